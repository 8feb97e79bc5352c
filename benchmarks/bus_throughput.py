"""Bus throughput: the in-memory adapter, the Kafka adapter and raw kafka-python, one run.

    uv run python benchmarks/bus_throughput.py [--messages 20000] [--bootstrap HOST:PORT]

Publishes N envelopes of about 1 KB (real ``acquisition.observations.v1`` envelopes, encoded
by the topic) and consumes them back, committing after every polled batch, through

(a) ``MemoryBus``, (b) ``KafkaBus``, (c) kafka-python's producer and consumer used directly
with the same settings (acks=all, idempotence, batch size, linger, fetch settings).

Three figures per adapter, in messages per second: *publish* (``publish`` calls of
``--chunk`` records, each confirmed), *consume* (one new group reading the topic, measured
from its first record, so the group join is reported apart) and *end-to-end* (a joined
consumer running while the records are published: first publish to last record received).
Without ``--bootstrap`` a Tansu broker is started for the run (``EmbeddedKafka``). Each Kafka
variant runs ``--rounds`` times, interleaved; the best round is kept. Figures are printed,
never asserted (see ``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from cityos_kernel.bus import Bus, ConsumerTuning, KafkaBus, MemoryBus, ProducerTuning, Record
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import OBSERVATIONS

PARTITIONS = 6
#: Short group timings so each group join costs ~1 s on Tansu; throughput does not depend
#: on them (the join is measured apart).
TUNING = ConsumerTuning(session_timeout_ms=2000, heartbeat_interval_ms=500)
PRODUCER = ProducerTuning()
POLL_RECORDS = 500


# -- workload -----------------------------------------------------------------------------


def envelopes(count: int, size: int = 1024) -> list[tuple[str, bytes]]:
    """``count`` (key, encoded envelope) pairs of ``size`` bytes, over 500 entities.

    Two measured attributes and a text ``note`` attribute padded to reach the size.
    """
    observed_at = datetime.now(UTC)

    def encode(entity: str, index: int, note: str) -> bytes:
        attributes = [
            ObservedAttribute(name=name, value=20.0 + index % 17, observed_at=observed_at)
            for name in ("temperature", "relativeHumidity")
        ]
        attributes.append(ObservedAttribute(name="note", value=note, observed_at=observed_at))
        payload = ObservationV1(
            entity_id=entity, entity_type="WeatherObserved", attributes=attributes
        )
        return OBSERVATIONS.encode(OBSERVATIONS.envelope(payload, source="benchmark"))

    pairs = []
    for index in range(count):
        entity = f"urn:ngsi-ld:WeatherObserved:station-{index % 500:03d}"
        padding = max(0, size - len(encode(entity, index, "")))
        pairs.append((entity, encode(entity, index, "x" * padding)))
    return pairs


@dataclass
class Figures:
    publish: list[float] = field(default_factory=list)
    consume: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    join_s: list[float] = field(default_factory=list)
    #: CPU microseconds per message spent in the calling thread (not kafka-python's I/O
    #: threads): the adapter's own overhead shows here, and machine load barely does
    publish_cpu_us: list[float] = field(default_factory=list)
    consume_cpu_us: list[float] = field(default_factory=list)

    def best(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return max(values) if values else float("nan")

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else float("nan")


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- through the bus port (memory and Kafka adapters) ---------------------------------------


def bench_port(bus: Bus, pairs: list[tuple[str, bytes]], chunk: int, figures: Figures) -> None:
    topic = f"bench.port.{uuid.uuid4().hex}.v1"
    records = [Record(topic, key, value) for key, value in pairs]
    bus.ensure_topics([topic])
    started, cpu = time.perf_counter(), time.thread_time()
    for batch in chunks(records, chunk):
        bus.publish(batch)
    figures.publish.append(rate(len(records), time.perf_counter() - started))
    figures.publish_cpu_us.append((time.thread_time() - cpu) / len(records) * 1e6)

    join_s, seconds, cpu_s = _consume_port(bus, topic, len(records))
    figures.join_s.append(join_s)
    figures.consume.append(rate(len(records), seconds))
    figures.consume_cpu_us.append(cpu_s / len(records) * 1e6)

    # end to end: a consumer that has joined already, on a fresh topic
    topic = f"bench.port.e2e.{uuid.uuid4().hex}.v1"
    records = [Record(topic, key, value) for key, value in pairs]
    subscription = bus.subscribe(f"bench-{uuid.uuid4().hex}", [topic])
    while not subscription.assignment():
        subscription.poll(timeout=0.1)
    done = threading.Event()
    finished: list[float] = []

    def consume_all() -> None:
        received = 0
        while received < len(records):
            batch = subscription.poll(max_records=POLL_RECORDS, timeout=0.5)
            if batch:
                subscription.commit(batch)
                received += len(batch)
        finished.append(time.perf_counter())
        done.set()

    consumer = threading.Thread(target=consume_all, daemon=True)
    consumer.start()
    started = time.perf_counter()
    for batch in chunks(records, chunk):
        bus.publish(batch)
    done.wait(timeout=300)
    consumer.join(timeout=5)
    subscription.close()
    figures.end_to_end.append(rate(len(records), finished[0] - started))


def _consume_port(bus: Bus, topic: str, count: int) -> tuple[float, float, float]:
    """Seconds until the first record, from the first record to the last, and thread CPU."""
    subscription = bus.subscribe(f"bench-{uuid.uuid4().hex}", [topic])
    subscribed, cpu = time.perf_counter(), time.thread_time()
    received = 0
    first = 0.0
    while received < count:
        batch = subscription.poll(max_records=POLL_RECORDS, timeout=0.5)
        if batch:
            if not received:
                first = time.perf_counter()
            subscription.commit(batch)
            received += len(batch)
    last, cpu = time.perf_counter(), time.thread_time() - cpu
    subscription.close()
    return first - subscribed, last - first, cpu


# -- raw kafka-python, same settings ----------------------------------------------------------


def raw_producer(bootstrap: str) -> Any:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bench-raw-producer",
        acks="all",
        enable_idempotence=True,
        retries=2_147_483_647,
        batch_size=PRODUCER.batch_size,
        linger_ms=PRODUCER.linger_ms,
        max_request_size=PRODUCER.max_request_size,
        delivery_timeout_ms=PRODUCER.delivery_timeout_ms,
    )


def raw_consumer(bootstrap: str, topic: str) -> Any:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="bench-raw-consumer",
        group_id=f"bench-raw-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=TUNING.session_timeout_ms,
        heartbeat_interval_ms=TUNING.heartbeat_interval_ms,
        max_poll_interval_ms=TUNING.max_poll_interval_ms,
        fetch_max_wait_ms=TUNING.fetch_max_wait_ms,
        max_partition_fetch_bytes=TUNING.max_partition_fetch_bytes,
    )
    consumer.subscribe([topic])
    return consumer


def raw_publish(producer: Any, topic: str, pairs: Sequence[tuple[bytes, bytes]]) -> None:
    futures = [producer.send(topic, key=key, value=value) for key, value in pairs]
    producer.flush()
    failed = [future for future in futures if not future.succeeded()]
    if failed:
        raise RuntimeError(f"{len(failed)} records not confirmed")


def raw_poll_count(consumer: Any) -> int:
    batches = consumer.poll(timeout_ms=500, max_records=POLL_RECORDS)
    received = sum(len(records) for records in batches.values())
    if received:
        consumer.commit()  # the positions just polled, as the adapter's commit(batch)
    return received


def bench_raw(
    bootstrap: str,
    admin: Any,
    producer: Any,
    pairs: list[tuple[str, bytes]],
    chunk: int,
    figures: Figures,
) -> None:
    encoded = [(key.encode(), value) for key, value in pairs]
    topic = f"bench.raw.{uuid.uuid4().hex}.v1"
    _create(admin, producer, topic)
    started, cpu = time.perf_counter(), time.thread_time()
    for batch in chunks(encoded, chunk):
        raw_publish(producer, topic, batch)
    figures.publish.append(rate(len(encoded), time.perf_counter() - started))
    figures.publish_cpu_us.append((time.thread_time() - cpu) / len(encoded) * 1e6)

    consumer = raw_consumer(bootstrap, topic)
    subscribed, cpu = time.perf_counter(), time.thread_time()
    received, first = 0, 0.0
    while received < len(encoded):
        count = raw_poll_count(consumer)
        if count and not received:
            first = time.perf_counter()
        received += count
    figures.consume.append(rate(len(encoded), time.perf_counter() - first))
    figures.consume_cpu_us.append((time.thread_time() - cpu) / len(encoded) * 1e6)
    figures.join_s.append(first - subscribed)
    consumer.close(autocommit=False)

    topic = f"bench.raw.e2e.{uuid.uuid4().hex}.v1"
    _create(admin, producer, topic)
    consumer = raw_consumer(bootstrap, topic)
    while not consumer.assignment():
        consumer.poll(timeout_ms=100)
    finished: list[float] = []

    def consume_all() -> None:
        total = 0
        while total < len(encoded):
            total += raw_poll_count(consumer)
        finished.append(time.perf_counter())

    thread = threading.Thread(target=consume_all, daemon=True)
    thread.start()
    started = time.perf_counter()
    for batch in chunks(encoded, chunk):
        raw_publish(producer, topic, batch)
    thread.join(timeout=300)
    consumer.close(autocommit=False)
    figures.end_to_end.append(rate(len(encoded), finished[0] - started))


def _create(admin: Any, producer: Any, topic: str) -> None:
    """Create the topic and load its metadata, as ``KafkaBus.ensure_topics`` does untimed."""
    admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
    admin.wait_for_topics([topic])
    producer.partitions_for(topic)


# -- driver ---------------------------------------------------------------------------------


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap is not None:
        yield bootstrap
        return
    from cityos.embedded.kafka import EmbeddedKafka

    with EmbeddedKafka() as embedded:
        yield embedded.bootstrap


def timed(what: str, action: Callable[[], None]) -> None:
    started = time.perf_counter()
    action()
    print(f"  {what}: {time.perf_counter() - started:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024, help="envelope size in bytes")
    parser.add_argument("--chunk", type=int, default=1000, help="records per publish call")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each Kafka variant")
    parser.add_argument("--bootstrap", help="an existing Kafka; default: start Tansu")
    args = parser.parse_args()

    pairs = envelopes(args.messages, args.size)
    sizes = [len(value) for _, value in pairs]
    print(
        f"{args.messages} envelopes of {statistics.mean(sizes):.0f} bytes "
        f"({OBSERVATIONS.name}), {args.chunk} per publish call, {PARTITIONS} partitions"
    )
    started = time.perf_counter()
    for _, value in pairs:
        OBSERVATIONS.decode(value)
    decode_rate = rate(len(pairs), time.perf_counter() - started)
    print(f"envelope decode (pydantic validation) alone: {decode_rate:,.0f} msg/s")

    results = {"memory": Figures(), "kafka adapter": Figures(), "raw kafka-python": Figures()}
    memory = MemoryBus(partitions=PARTITIONS)
    timed("memory", lambda: bench_port(memory, pairs, args.chunk, results["memory"]))
    memory.close()

    with broker(args.bootstrap) as bootstrap:
        print(f"Kafka protocol broker at {bootstrap}")
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
        producer = raw_producer(bootstrap)
        kafka_bus = KafkaBus(
            bootstrap, partitions=PARTITIONS, client_id="bench", consumer_tuning=TUNING
        )
        try:
            for round_number in range(1, args.rounds + 1):
                variants = [
                    (
                        "kafka adapter",
                        lambda: bench_port(kafka_bus, pairs, args.chunk, results["kafka adapter"]),
                    ),
                    (
                        "raw kafka-python",
                        lambda: bench_raw(
                            bootstrap,
                            admin,
                            producer,
                            pairs,
                            args.chunk,
                            results["raw kafka-python"],
                        ),
                    ),
                ]
                if round_number % 2 == 0:  # alternate who runs first: the broker's state grows
                    variants.reverse()
                for name, action in variants:
                    timed(f"round {round_number} {name}", action)
        finally:
            kafka_bus.close()
            producer.close()
            admin.close()

    print()
    print(
        f"{'msg/s (best round)':<20}{'publish':>12}{'consume':>12}{'end-to-end':>12}"
        f"{'join s':>9}{'pub CPU us':>12}{'cons CPU us':>12}"
    )
    for name, figures in results.items():
        print(
            f"{name:<20}{figures.best('publish'):>12,.0f}{figures.best('consume'):>12,.0f}"
            f"{figures.best('end_to_end'):>12,.0f}{min(figures.join_s):>9.2f}"
            f"{min(figures.publish_cpu_us):>12.1f}{min(figures.consume_cpu_us):>12.1f}"
        )
    print("(CPU us: per message, in the publishing or consuming thread, best round)")
    adapter, raw = results["kafka adapter"], results["raw kafka-python"]
    for summary in ("best", "median"):
        ratios = ", ".join(
            f"{name} {getattr(adapter, summary)(name) / getattr(raw, summary)(name):.0%}"
            for name in ("publish", "consume", "end_to_end")
        )
        print(f"kafka adapter / raw ({summary} rounds): {ratios}")
    for name, figures in results.items():
        if name != "memory":
            print(
                f"{name} all rounds: publish {[round(v) for v in figures.publish]}, "
                f"consume {[round(v) for v in figures.consume]}, "
                f"end-to-end {[round(v) for v in figures.end_to_end]}"
            )


if __name__ == "__main__":
    main()
