"""The MQTT transport against a Mosquitto broker of its own, which the test restarts."""

from __future__ import annotations

import asyncio
import json
import queue
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cityos.embedded import EmbeddedMosquitto
from cityos_interoperability.subscriptions.model import Endpoint
from cityos_interoperability.subscriptions.rendering import Notification
from cityos_interoperability.subscriptions.transports import MqttTransport

pytestmark = pytest.mark.mqtt


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedMosquitto]:
    broker = EmbeddedMosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def listen(broker: EmbeddedMosquitto, topic: str) -> tuple[mqtt.Client, queue.Queue[Any]]:
    received: queue.Queue[Any] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listener-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda c, u, message: received.put(json.loads(message.payload))
    client.on_subscribe = lambda c, u, mid, codes, properties: subscribed.put(True)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=5)
    return client, received


def notification(uri: str, number: int) -> Notification:
    body = {"id": f"urn:ngsi-ld:Notification:{number}", "type": "Notification", "data": []}
    return Notification(
        None, "urn:ngsi-ld:Subscription:1", Endpoint(uri), body, {}, datetime.now(UTC)
    )


def test_a_restarted_broker_gets_the_next_notification_at_the_first_attempt(
    own_broker: EmbeddedMosquitto,
) -> None:
    topic = f"notify/{uuid.uuid4().hex}"
    uri = f"{own_broker.url}/{topic}"
    transport = MqttTransport(timeout_seconds=5)
    listener, received = listen(own_broker, topic)
    try:
        asyncio.run(transport.send(notification(uri, 1)))
        assert received.get(timeout=5)["body"]["id"] == "urn:ngsi-ld:Notification:1"
        listener.disconnect()
        listener.loop_stop()

        port = own_broker.port
        own_broker.stop()
        own_broker.start()  # the same port: the endpoint's broker is back
        assert own_broker.port == port
        listener, received = listen(own_broker, topic)
        # The client kept from before the restart is gone; the transport connects again
        # instead of failing this notification (which a retry would only send later).
        asyncio.run(transport.send(notification(uri, 2)))
        assert received.get(timeout=5)["body"]["id"] == "urn:ngsi-ld:Notification:2"
    finally:
        listener.disconnect()
        listener.loop_stop()
        asyncio.run(transport.close())
