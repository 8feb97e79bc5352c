"""The buffered paho client against a real Mosquitto: packets parsed from large reads, acks in bulk.

It must deliver exactly what was published — small and large payloads, packets cut at the
end of a read, multi-byte remaining lengths — and its bulk acks must be real PUBACKs: the
broker forgets acked messages and delivers the unacked ones again to the same session.
"""

from __future__ import annotations

import threading
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cityos_acquisition.transports.paho_client import READ_SIZE, BufferedClient, ReceivedPublish
from tests.fixtures.acquisition import publish_mqtt, wait_for

pytestmark = pytest.mark.mqtt


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


class Session:
    """A persistent-session BufferedClient run by a loop like the ingestion service's."""

    def __init__(self, url: str, client_id: str, topic: str) -> None:
        self.url, self.client_id, self.topic = url, client_id, topic
        self.received: list[ReceivedPublish] = []
        self.via_paho = 0
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._acks: list[int] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        client = BufferedClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )

        def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
            self.via_paho += 1
            self.received.append(
                ReceivedPublish(message.topic, bytes(message.payload), message.mid, message.qos)
            )

        client.on_message = on_message
        client.on_publish_batch = self.received.extend
        client.on_subscribe = lambda *args: self._subscribed.set()
        client.on_connect = lambda c, *args: c.subscribe(self.topic, qos=1)
        client.connect(*_address(self.url))
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(client,), daemon=True)
        self._thread.start()
        assert self._subscribed.wait(10)

    def _loop(self, client: BufferedClient) -> None:
        while not self._stop.is_set():
            client.loop(timeout=0.0 if client.buffered() else 0.01)
            while client.buffered():
                client.loop_read()
            with self._lock:
                acks, self._acks = self._acks, []
            client.ack_many(acks)
        client.disconnect()
        client.loop(timeout=0.1)

    def ack(self, message_ids: list[int]) -> None:
        with self._lock:
            self._acks.extend(message_ids)

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)


def test_every_payload_arrives_intact_and_in_order(mqtt_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    topic = f"paho-test/{tag}"
    # Sizes that cross read boundaries and need 1-, 2- and 3-byte remaining lengths.
    sizes = [0, 1, 100, 127, 128, 16_383, 16_384, READ_SIZE - 10, READ_SIZE + 7, 3, 2_000_000]
    messages = [(f"{topic}/{n}", bytes([n % 251]) * size) for n, size in enumerate(sizes)]
    messages += [(f"{topic}/small/{n}", f'{{"n": {n}}}'.encode()) for n in range(3000)]
    session = Session(mqtt_url, f"paho-{tag}", f"{topic}/#")
    session.start()  # creates the persistent session
    session.stop()
    publish_mqtt(mqtt_url, messages)  # a backlog: the broker sends it as fast as it can
    session.start()
    try:
        wait_for(lambda: len(session.received) >= len(messages), timeout=30)
        session.ack([m.mid for m in session.received])
    finally:
        session.stop()
    assert [(m.topic, m.payload) for m in session.received] == messages
    assert {m.qos for m in session.received} == {1}
    # Both paths were taken: paho's for the first packet of a read, the bulk parser after.
    assert session.via_paho > 0
    assert len(messages) - session.via_paho >= 100


def test_bulk_acks_are_kept_and_unacked_messages_come_again(mqtt_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    topic = f"paho-test/{tag}"
    session = Session(mqtt_url, f"paho-{tag}", f"{topic}/#")
    session.start()  # creates the persistent session
    session.stop()
    messages = [(f"{topic}/{n}", str(n).encode()) for n in range(400)]
    publish_mqtt(mqtt_url, messages)
    session.start()
    try:
        wait_for(lambda: len(session.received) >= 400, timeout=20)
        acked = [m for m in session.received if int(m.payload) % 2 == 0]
        session.ack([m.mid for m in acked])
        wait_for(lambda: not session._acks, timeout=5)
    finally:
        session.stop()
    session.received.clear()
    session.start()  # same client id: the broker resends what was never acknowledged
    try:
        wait_for(lambda: len(session.received) >= 200, timeout=20)
    finally:
        session.stop()
    again = sorted(int(m.payload) for m in session.received)
    assert again == list(range(1, 400, 2))
