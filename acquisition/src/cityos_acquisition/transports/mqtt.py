"""The MQTT transport: subscribe, hand messages to the pipeline, ack after the bus confirmed.

paho's network thread only puts received messages on a queue (``on_message``); one worker
thread takes them in batches, runs the pipeline, publishes the batch's records to the bus
and acknowledges each message (paho manual acks) only when ``bus.publish`` has returned.
The session is persistent (MQTT 5, ``clean_start=False`` with a session expiry), so the
broker keeps unacknowledged messages and whatever arrives while the service is down, and
delivers them again when it reconnects: a crash between receipt and confirmation loses
nothing. A bus outage stalls acknowledgements; ``ReceiveMaximum`` then stops the broker
from sending more until the bus is back.
"""

from __future__ import annotations

import collections
import concurrent.futures
import gc
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cityos_acquisition.ingest import metrics
from cityos_acquisition.ingest.inbound import Inbound
from cityos_acquisition.ingest.pipeline import IngestPipeline, Outcome
from cityos_acquisition.transports.mqtt_topics import route_topic
from cityos_acquisition.transports.paho_client import BufferedClient, ReceivedPublish
from cityos_kernel.bus.port import Bus, BusError, Record
from cityos_kernel.errors import DependencyUnavailableError

logger = logging.getLogger(__name__)

#: The broker keeps the session (subscriptions, unacknowledged messages) this long offline.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
#: Packets handled per network-loop turn at most, from what one socket read brought in.
READ_BURST = 5000


def mqtt_address(url: str) -> tuple[str, int, str | None, str | None, bool]:
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
        raise ValueError(f"not an mqtt:// URL: {url}")
    default_port = 8883 if parts.scheme == "mqtts" else 1883
    return (
        parts.hostname,
        parts.port or default_port,
        parts.username,
        parts.password,
        parts.scheme == "mqtts",
    )


def to_inbound(message: ReceivedPublish, received_at: datetime) -> Inbound:
    """A received MQTT message as pipeline input (an unknown topic becomes a dead letter)."""
    topic = message.topic
    route = route_topic(topic)
    if route is None:
        return Inbound("mqtt", "auto", message.payload, received_at, topic=topic)
    return Inbound(
        transport=route.transport,
        kind=route.kind,
        payload=message.payload,
        received_at=received_at,
        topic=topic,
        apikey=route.apikey,
        device_id=route.device_id,
        attribute=route.attribute,
    )


class MqttIngestService:
    """A :class:`cityos_kernel.layer.BackgroundService` that ingests device MQTT traffic."""

    name = "acquisition-mqtt"

    def __init__(
        self,
        url: str,
        *,
        pipeline: IngestPipeline,
        bus: Bus,
        topics: Sequence[str],
        client_id: str,
        shared_group: str | None = None,
        max_inflight: int = 1000,
        batch_max: int = 500,
        batch_wait: float = 0.005,
        retry_backoff: tuple[float, float] = (0.2, 10.0),
        session_expiry: int = SESSION_EXPIRY_SECONDS,
        protocol: str = "3.1.1",
        gc_threshold: int = 0,
    ) -> None:
        self._gc_threshold = gc_threshold
        self._session_expiry = session_expiry
        self._protocol = protocol
        self._received = 0
        self._address = mqtt_address(url)
        self._pipeline = pipeline
        self._bus = bus
        self._topics = [f"$share/{shared_group}/{t}" if shared_group else t for t in topics]
        self._client_id = client_id
        self._max_inflight = max_inflight
        self._batch_max = batch_max
        self._batch_wait = batch_wait
        self._retry_backoff = retry_backoff
        #: Received messages for the worker; the network thread signals ``_arrived`` once
        #: per burst of packets rather than waking the worker for every message.
        self._inbox: collections.deque[ReceivedPublish] = collections.deque()
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._stop_network = threading.Event()
        self._worker: threading.Thread | None = None
        self._network: threading.Thread | None = None
        self._client: BufferedClient | None = None
        #: Ids of messages whose records the bus confirmed, for the network thread to ack.
        self._acks: collections.deque[tuple[int, int]] = collections.deque()
        #: Command messages other threads want published, with where to hand the result.
        self._outgoing: collections.deque[
            tuple[str, bytes, concurrent.futures.Future[mqtt.MQTTMessageInfo]]
        ] = collections.deque()
        #: Messages acknowledged to the broker so far.
        self.acknowledged = 0

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        _, _, username, password, tls = self._address
        collect_after, *older = gc.get_threshold()
        if self._gc_threshold > collect_after > 0:
            # Process-wide, but this service dominates a process's allocations (ADR 0025).
            gc.set_threshold(self._gc_threshold, *older)
            logger.info("garbage-collector threshold raised to %d", self._gc_threshold)
        v5 = self._protocol == "5"
        client = BufferedClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            # MQTT 3.1.1: a persistent session is clean_session=False (MQTT 5: clean_start).
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if username:
            client.username_pw_set(username, password)
        if tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish_batch = self._on_publish_batch
        self._client = client
        self._stop.clear()
        self._stop_network.clear()
        self._worker = threading.Thread(target=self._run, name="acquisition-mqtt", daemon=True)
        self._network = threading.Thread(
            target=self._network_loop, name="acquisition-mqtt-network", daemon=True
        )
        self._worker.start()
        self._network.start()

    def stop(self) -> None:
        """Finish the batch in hand (acknowledged if confirmed), then disconnect."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(15)
        self._stop_network.set()
        if self._network is not None:
            self._network.join(15)
        self._connected.clear()

    def _connect(self, client: BufferedClient) -> None:
        host, port, *_ = self._address
        if self._protocol != "5":
            client.connect(host, port, keepalive=30)
            return
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry
        properties.ReceiveMaximum = self._max_inflight
        client.connect(host, port, keepalive=30, clean_start=False, properties=properties)

    def _network_loop(self) -> None:
        """paho's network loop, run here so that acknowledgements are sent from this thread.

        Acking from the worker would wake this thread once per message; instead the worker
        queues confirmed message ids and they are sent between two loop iterations.
        """
        client = self._client
        assert client is not None
        delay = 0.5
        connected = False
        while not self._stop_network.is_set():
            if not connected:
                try:
                    self._connect(client)
                    connected, delay = True, 0.5
                except OSError as exc:
                    logger.warning("MQTT broker unreachable (%s); retrying in %.1fs", exc, delay)
                    self._stop_network.wait(delay)
                    delay = min(delay * 2, 10.0)
                    continue
            result = client.loop(timeout=0.0 if client.buffered() else 0.01)
            # loop() handles one packet per turn; handle the rest of what its read brought.
            burst = 0
            while result == mqtt.MQTT_ERR_SUCCESS and client.buffered() and burst < READ_BURST:
                result = client.loop_read()
                burst += 1
            if self._inbox:
                self._arrived.set()
            self._flush_acks(client)
            if self._connected.is_set():
                self._flush_outgoing(client)
            if result != mqtt.MQTT_ERR_SUCCESS:
                connected = False
                self._connected.clear()
        self._flush_acks(client)
        if connected:
            client.disconnect()
            client.loop(timeout=0.1)

    def _flush_acks(self, client: BufferedClient) -> None:
        """Send the PUBACKs the worker queued, as one write (QoS 0 messages need none)."""
        acks = self._acks
        if not acks:
            return
        taken = [acks.popleft() for _ in range(len(acks))]
        client.ack_many(mid for mid, qos in taken if qos == 1)
        self.acknowledged += len(taken)

    def wait_connected(self, timeout: float = 10.0) -> None:
        if not self._connected.wait(timeout):
            raise DependencyUnavailableError(f"no MQTT connection within {timeout}s")

    def check(self) -> str:
        if not self._connected.is_set():
            raise DependencyUnavailableError("the acquisition MQTT client is not connected")
        return f"subscribed as {self._client_id}, {self.acknowledged} messages acknowledged"

    # -- paho callbacks (network thread): hand over, nothing else ----------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason_code: object,
        properties: object,
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            logger.error("MQTT broker refused the connection: %s", reason_code)
            return
        if self._protocol == "5":
            options = SubscribeOptions(qos=1)
            client.subscribe([(topic, options) for topic in self._topics])
        else:
            client.subscribe([(topic, 1) for topic in self._topics])
        logger.info("MQTT connected as %s, %d subscriptions", self._client_id, len(self._topics))

    def _on_subscribe(self, *args: object) -> None:
        self._connected.set()

    def _on_disconnect(self, *args: object) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self._received += 1
        self._inbox.append(
            ReceivedPublish(message.topic, bytes(message.payload), message.mid, message.qos)
        )

    def _on_publish_batch(self, messages: list[ReceivedPublish]) -> None:
        self._received += len(messages)
        self._inbox.extend(messages)

    # -- worker thread ------------------------------------------------------------------
    def _next_batch(self) -> list[ReceivedPublish]:
        """Up to ``batch_max`` messages, waiting at most ``batch_wait`` for a batch to fill."""
        inbox, arrived = self._inbox, self._arrived
        if not inbox:
            arrived.wait(0.2)
        arrived.clear()
        if not inbox:
            return []
        batch: list[ReceivedPublish] = []
        deadline = time.monotonic() + self._batch_wait
        while True:
            while inbox and len(batch) < self._batch_max:
                batch.append(inbox.popleft())
            remaining = deadline - time.monotonic()
            if len(batch) >= self._batch_max or remaining <= 0:
                return batch
            if not arrived.wait(remaining):
                return batch
            arrived.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                try:
                    self._handle(batch)
                except Exception:
                    # Unacknowledged: the broker delivers these again after a reconnect.
                    logger.exception("MQTT batch of %d failed; not acknowledged", len(batch))

    def _handle(self, batch: list[ReceivedPublish]) -> None:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        work: list[tuple[ReceivedPublish, Inbound, Outcome]] = []
        for message in batch:
            inbound = to_inbound(message, received_at)
            if inbound.kind == "auto" and inbound.device_id is None:
                reason = f"unrecognised topic {message.topic}"
                outcome = Outcome(rejected=reason)
                outcome.records.append(self._pipeline.dead_letter(inbound, reason))
                metrics.DEAD_LETTERS.labels("mqtt", "topic").inc()
            else:
                outcome = self._pipeline.process(inbound, count=False)
            work.append((message, inbound, outcome))
        records = [record for _, _, outcome in work for record in outcome.records]
        if not self._publish(records):
            return
        self._acks.extend((message.mid, message.qos) for message, _, _ in work)
        self._pipeline.count_batch((inbound, outcome) for _, inbound, outcome in work)
        for _, inbound, outcome in work:
            self._pipeline.accepted(inbound, outcome, count=False)
        metrics.BATCH_SECONDS.labels("mqtt").observe(time.perf_counter() - started)

    def _publish(self, records: list[Record]) -> bool:
        """Publish until the bus confirms; ``False`` if stopping first (nothing is acked)."""
        backoff = self._retry_backoff[0]
        while True:
            try:
                if records:
                    self._bus.publish(records)
                return True
            except BusError as exc:
                metrics.PUBLISH_FAILURES.labels("mqtt").inc()
                logger.warning("bus did not confirm %d records, retrying: %s", len(records), exc)
            if self._stop.wait(backoff):
                return False
            backoff = min(backoff * 2, self._retry_backoff[1])

    # -- outgoing (commands) --------------------------------------------------------------
    def send(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK (from any thread)."""
        if self._client is None or self._network is None:
            raise DependencyUnavailableError("the MQTT service is not started")
        handed: concurrent.futures.Future[mqtt.MQTTMessageInfo] = concurrent.futures.Future()
        self._outgoing.append((topic, payload, handed))
        try:
            info = handed.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise DependencyUnavailableError(f"no MQTT connection to send {topic}") from exc
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise DependencyUnavailableError(f"the broker did not confirm {topic}")

    def _flush_outgoing(self, client: BufferedClient) -> None:
        """Publish what other threads asked to send (paho writes are not thread-safe here)."""
        while self._outgoing:
            topic, payload, handed = self._outgoing.popleft()
            handed.set_result(client.publish(topic, payload, qos=1))
