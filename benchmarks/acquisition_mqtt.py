"""MQTT → ``acquisition.observations.v1`` throughput next to the raw broker, one run.

    uv run python benchmarks/acquisition_mqtt.py [--messages 30000] [--mqtt-url mqtt://HOST:PORT]

Without ``--mqtt-url`` a Mosquitto is started for the run (``EmbeddedMosquitto``). Four
streams go through the same broker, each measured two ways:

- *raw*: a plain paho subscriber (QoS 1, automatic acks) — the broker round trip;
- *raw, buffered*: the layer's own receive path (``BufferedClient``: bulk reads, PUBLISH
  parsed in one pass, a burst's PUBACKs in one write) that only counts and acks — the
  fastest this machine moves the same messages through the broker, so "of buffered raw"
  is the share of that ceiling the ingestion keeps after decoding, mapping and publishing;
- *JSON, 1 measure*: IoT Agent JSON devices (``/json/<apikey>/<device>/attrs``, one
  measure per message) through the acquisition layer's MQTT service (manual acks after the
  bus confirmed), onto the in-memory bus;
- *JSON, 3 measures*: the same with three measures per message (an AirQualityObserved
  station sending ``t``, ``no2``, ``pm10`` together);
- *CayenneLPP*: ChirpStack v4 uplinks with a CayenneLPP frame (two records), decoded,
  mapped, plus the radio metadata (RSSI, SNR, frame counter) of the Device entity.

An *observation* is one attribute value (one history row in the knowledge layer), the
definition the knowledge ingest benchmark uses: ``obs/msg`` is counted from the
observations the bus received, and ``obs/s`` = drain msg/s * obs/msg.

*drain*: the messages wait in the broker (persistent session, subscriber offline) and the
figure is how fast the subscriber empties the backlog — the subscriber's capacity alone.
*live*: one publisher sends while the subscriber runs; first publish to last message
handled — what a single fast device population achieves, publisher included (both run on
the same cores). Figures are printed, never asserted (see ``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cityos.embedded import EmbeddedMosquitto
from cityos_acquisition.codecs.cayenne_lpp import encode_cayenne_lpp
from cityos_acquisition.layer import build_parts
from cityos_acquisition.registry.schemas import DeviceIn, GroupIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_acquisition.transports.paho_client import BufferedClient, ReceivedPublish
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.events.topics import OBSERVATIONS

DEVICES = 200


@contextlib.contextmanager
def broker(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    state = Path(tempfile.mkdtemp(prefix="cityos-bench-mqtt-"))
    mosquitto = EmbeddedMosquitto(state)
    mosquitto.start()
    try:
        yield mosquitto.url
    finally:
        mosquitto.stop()


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


def publish_all(url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 as fast as the broker acknowledges, and wait for the last PUBACK."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.connect(*address(url))
    client.loop_start()
    info = None
    for topic, payload in messages:
        info = client.publish(topic, payload, qos=1)
    if info is not None:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


class RawSubscriber:
    """A persistent-session subscriber that only counts and acknowledges what it receives.

    ``buffered=False``: stock paho (automatic acks, ``loop_start``). ``buffered=True``: the
    layer's :class:`BufferedClient` driven the way the MQTT service drives it (its own loop,
    the buffered bytes drained before the next ``select``, a burst's PUBACKs in one write).
    """

    def __init__(self, url: str, topic: str, *, buffered: bool = False) -> None:
        self.url, self.topic, self.buffered = url, topic, buffered
        self.client_id = f"bench-raw-{uuid.uuid4().hex[:8]}"
        self.received = 0
        self.client: mqtt.Client | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        client_class = BufferedClient if self.buffered else mqtt.Client
        client = client_class(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=self.buffered,
        )
        subscribed = threading.Event()

        def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
            if self.buffered and message.qos == 1:
                client.ack(message.mid, message.qos)  # a packet paho parsed (cut by a read)
            self.received += 1

        if isinstance(client, BufferedClient):
            buffered_client = client

            def on_publish_batch(batch: list[ReceivedPublish]) -> None:
                # Runs in the network thread, where ack_many must be called.
                buffered_client.ack_many(message.mid for message in batch if message.qos == 1)
                self.received += len(batch)

            client.on_publish_batch = on_publish_batch
        client.on_message = on_message
        client.on_subscribe = lambda *args: subscribed.set()
        client.connect(*address(self.url))
        if isinstance(client, BufferedClient):
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, args=(client,), daemon=True)
            self._thread.start()
        else:
            client.loop_start()
        client.subscribe(self.topic, qos=1)
        subscribed.wait(10)
        self.client = client

    def _loop(self, client: BufferedClient) -> None:
        while not self._stop.is_set():
            result = client.loop(timeout=0.0 if client.buffered() else 0.01)
            while result == mqtt.MQTT_ERR_SUCCESS and client.buffered():
                result = client.loop_read()

    def disconnect(self) -> None:
        if self.client is None:
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join(5)
            self._thread = None
            self.client.disconnect()
            self.client.loop(timeout=0.1)
        else:
            self.client.disconnect()
            self.client.loop_stop()
        self.client = None


def json_messages(apikey: str, count: int, measures: int = 1) -> list[tuple[str, bytes]]:
    """JSON measure messages: ``no2`` alone, or ``t``, ``no2`` and ``pm10`` together."""
    return [
        (
            f"/json/{apikey}/aq-{n % DEVICES:04d}/attrs",
            orjson.dumps(
                {"no2": 40 + n % 7}
                if measures == 1
                else {"t": 20 + n % 10 / 10, "no2": 40 + n % 7, "pm10": 12 + n % 5}
            ),
        )
        for n in range(count)
    ]


def cayenne_messages(prefix: str, count: int) -> list[tuple[str, bytes]]:
    messages = []
    for n in range(count):
        device = n % DEVICES
        frame = encode_cayenne_lpp(
            [(1, "temperature", 15 + device / 100), (2, "percentage", n % 100)]
        )
        uplink = {
            "deviceInfo": {"applicationId": "bench", "devEui": f"{prefix}{device:04x}"},
            "fPort": 1,
            "fCnt": n,
            "data": base64.b64encode(frame).decode(),
            "rxInfo": [{"gatewayId": "gw", "rssi": -80, "snr": 5.5}],
        }
        messages.append(
            (f"application/bench/device/{prefix}{device:04x}/event/up", orjson.dumps(uplink))
        )
    return messages


def drain_and_live(
    start: Callable[[], None],
    stop: Callable[[], None],
    handled: Callable[[], int],
    url: str,
    messages: list[tuple[str, bytes]],
) -> tuple[float, float, float]:
    """Seconds to empty a backlog, with a live publisher, and CPU seconds of the drain.

    The CPU time is this process's (the subscriber's; the broker runs apart): on a machine
    shared with other work it is steadier than wall-clock throughput.
    """
    count = len(messages)
    start()  # creates the persistent session and its subscriptions
    stop()
    publish_all(url, messages)
    started, cpu = time.perf_counter(), time.process_time()
    start()
    while handled() < count:
        time.sleep(0.002)
    drain, drain_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    publish_all(url, messages)
    while handled() < 2 * count:
        time.sleep(0.002)
    live = time.perf_counter() - started
    stop()
    return drain, live, drain_cpu


def bench_raw(url: str, count: int, *, buffered: bool = False) -> tuple[float, float, float]:
    subscriber = RawSubscriber(url, f"bench/{uuid.uuid4().hex[:6]}/#", buffered=buffered)
    messages = [(subscriber.topic[:-1] + "x", b'{"t": 21.5, "no2": 40, "pm10": 12}')] * count
    return drain_and_live(
        subscriber.connect, subscriber.disconnect, lambda: subscriber.received, url, messages
    )


def bench_acquisition(url: str, count: int, kind: str) -> tuple[float, float, float, float]:
    """Returns (drain s, live s, drain CPU s, observations (attribute values) per message)."""
    bus = MemoryBus(partitions=6)
    tag = uuid.uuid4().hex[:6]
    settings = AcquisitionSettings(mqtt_client_id=f"bench-acq-{tag}")
    wired = build_parts(bus, MemoryRegistryStore(), settings, url)
    scope = Scope("bench", "/")
    if kind.startswith("json"):
        wired.registry.create_groups(scope, [GroupIn(apikey=tag, entity_type="AirQualityObserved")])
        messages = json_messages(tag, count, measures=3 if kind == "json3" else 1)
    else:
        prefix = f"{tag}{0:06x}"[:12]
        wired.registry.create_devices(
            scope,
            [
                DeviceIn.model_validate(
                    {
                        "device_id": f"lpp-{tag}-{d}",
                        "entity_type": "WasteContainer",
                        "lorawan": {"dev_eui": f"{prefix}{d:04x}", "data_model": "cayennelpp"},
                    }
                )
                for d in range(DEVICES)
            ],
        )
        messages = cayenne_messages(prefix, count)
    service = wired.mqtt
    assert service is not None

    def start() -> None:
        service.start()
        service.wait_connected()

    drain, live, cpu = drain_and_live(
        start, service.stop, lambda: service.acknowledged, url, messages
    )
    subscription = bus.subscribe("bench-count", [OBSERVATIONS.name])
    observations = 0
    while batch := subscription.poll(10_000, 0.2):
        observations += sum(len(orjson.loads(d.value)["payload"]["attributes"]) for d in batch)
    return drain, live, cpu, observations / (2 * count)


def replica(url: str, group: str, apikey: str, client_id: str, counter: str) -> None:
    """One ingestion process of a shared subscription (run by ``--replicas``)."""
    wired = build_parts(
        MemoryBus(partitions=6),
        MemoryRegistryStore(),
        AcquisitionSettings(mqtt_client_id=client_id, mqtt_shared_group=group),
        url,
    )
    wired.registry.create_groups(
        Scope("bench", "/"), [GroupIn(apikey=apikey, entity_type="AirQualityObserved")]
    )
    service = wired.mqtt
    assert service is not None
    service.start()
    service.wait_connected()
    path = Path(counter)
    while True:
        path.write_text(str(service.acknowledged))
        time.sleep(0.02)


def bench_replicas(url: str, count: int, replicas: int) -> float:
    """JSON drain rate of ``replicas`` processes sharing one subscription ($share)."""
    tag = uuid.uuid4().hex[:6]
    state = Path(tempfile.mkdtemp(prefix="cityos-bench-replicas-"))
    counters = [state / f"acked-{n}" for n in range(replicas)]
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--replica", url, f"bench-{tag}", tag, f"bench-{tag}-{n}",
             str(counter)]
        )
        for n, counter in enumerate(counters)
    ]  # fmt: skip

    def acked() -> int:
        return sum(int(c.read_text() or 0) for c in counters if c.exists())

    try:
        while not all(c.exists() for c in counters):
            time.sleep(0.05)
        for process in processes:  # paused: the backlog builds up in the broker
            os.kill(process.pid, signal.SIGSTOP)
        publish_all(url, json_messages(tag, count))
        started = time.perf_counter()
        for process in processes:
            os.kill(process.pid, signal.SIGCONT)
        while acked() < count:
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        for process in processes:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--mqtt-url")
    parser.add_argument(
        "--replicas", type=int, default=2, help="processes sharing a subscription (0: skip)"
    )
    parser.add_argument("--replica", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.replica:
        replica(*arguments.replica)
        return
    count = arguments.messages
    if count > 90_000:  # the drain waits in an offline session: Mosquitto would drop the rest
        parser.error("--messages: at most 90,000 (the broker queues 100,000 per session)")
    print(f"{os.cpu_count()} CPUs, {count} messages per stream, {DEVICES} devices per kind")
    with broker(arguments.mqtt_url) as url:
        raw_drain, raw_live, raw_cpu = bench_raw(url, count)
        fast_drain, fast_live, fast_cpu = bench_raw(url, count, buffered=True)
        header = ("drain msg/s", "live msg/s", "obs/msg", "obs/s", "CPU µs/msg", "of raw")
        print(f"{'stream':<30}" + "".join(f"{h:>12}" for h in header) + f"{'of buffered':>12}")
        for label, drain, live, cpu in (
            ("raw broker round trip", raw_drain, raw_live, raw_cpu),
            ("raw, buffered receive path", fast_drain, fast_live, fast_cpu),
        ):
            print(
                f"{label:<30}{count / drain:>12,.0f}{count / live:>12,.0f}"
                f"{'':>24}{cpu / count * 1e6:>12,.0f}"
            )
        streams = (
            ("json", "JSON, 1 measure"),
            ("json3", "JSON, 3 measures"),
            ("lpp", "CayenneLPP (2 records)"),
        )
        for kind, label in streams:
            drain, live, cpu, per_message = bench_acquisition(url, count, kind)
            print(
                f"{label:<30}{count / drain:>12,.0f}{count / live:>12,.0f}{per_message:>12.2f}"
                f"{count * per_message / drain:>12,.0f}{cpu / count * 1e6:>12,.0f}"
                f"{raw_drain / drain:>12.0%}{fast_drain / drain:>12.0%}"
            )
        if arguments.replicas > 1:
            seconds = bench_replicas(url, count, arguments.replicas)
            label = f"JSON 1 measure, {arguments.replicas} replicas"
            print(
                f"{label:<30}{count / seconds:>12,.0f}{'':>12}{1:>12.2f}{count / seconds:>12,.0f}"
                f"{'':>12}{raw_drain / seconds:>12.0%}{fast_drain / seconds:>12.0%}"
            )
        print(
            "drain: backlog emptied by the subscriber alone; live: with a publisher on the same "
            "cores; obs/msg: attribute values (history rows) per message, counted on the bus; "
            "obs/s: drain msg/s * obs/msg; CPU µs/msg: this process's CPU time per message "
            "while draining; of raw: raw drain time / this drain time; of buffered: the same "
            "against the buffered raw subscriber."
        )


if __name__ == "__main__":
    main()
