"""Knowledge ingest: observations/s applied from the bus into the stores, next to raw COPY.

    uv run python benchmarks/knowledge_ingest.py [--messages 40000] [--entities 1000]
        [--rounds 2] [--consumers 2 | 1,2] [--database-url postgresql://…] [--bootstrap HOST:PORT]
        [--no-fsync]

Starts an embedded PostgreSQL+PostGIS (or uses ``--database-url``; the run creates and
leaves tenant schemas ``bench-*`` there), applies the migrations, and builds ``--messages``
``acquisition.observations.v1`` envelopes over ``--entities`` entities, each with three
numeric attributes (one *observation* = one measured attribute value = one history row).

(a) **ingest**: the knowledge layer's ``knowledge-ingest`` consumer specs (``--consumers``
    members of the group, default ``CITYOS_KNOWLEDGE_INGEST_CONSUMERS``) run in the kernel's
    ``ConsumerRunner`` threads, as the runtime runs them; the envelopes are then published
    to the bus (``MemoryBus``; a Kafka-protocol broker with ``--bootstrap``) and the run is
    timed until the group has committed the last offset. Each batch: decode, stage the
    observations with one COPY, history ``INSERT … SELECT``, current-state upsert, entity
    documents and change events into the outbox, one transaction, then the offset commit.
(b) **raw COPY**: the same history rows, already encoded as COPY text, COPied straight into the
    same history table of another new tenant (same partitions and unique index), one COPY
    and one commit per batch of the same size, one connection — the floor of one writer.

Rounds alternate (a) and (b); the best round of each is kept. Figures are printed, never
asserted (``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cityos.embedded import EmbeddedPostgres
from cityos.migrate import upgrade
from cityos_kernel.bus import Bus, ConsumerTuning, KafkaBus, MemoryBus, Record
from cityos_kernel.bus.consumer import ConsumerRunner, Handler, Message
from cityos_kernel.database import libpq_url
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import Topic
from cityos_knowledge.ingest.consumer import ingest_consumers
from cityos_knowledge.ingest.terms import expand_term
from cityos_knowledge.layer import KnowledgeLayer
from cityos_knowledge.settings import KnowledgeSettings
from cityos_knowledge.store.database import KnowledgeStore

ATTRIBUTES = ("temperature", "relativeHumidity", "atmosphericPressure")
START = datetime(2026, 11, 1, tzinfo=UTC)
VOCABULARY = "https://uri.etsi.org/ngsi-ld/default-context/"
COLUMNS = ("entity_id", "name", "dataset_id", "observed_at", "kind", "unit_code", "value_number")


def observations(messages: int, entities: int) -> list[ObservationV1]:
    """Every entity reports every 15 minutes, round-robin: message n is entity n % E."""
    found = []
    for n in range(messages):
        entity, step = n % entities, n // entities
        at = START + timedelta(minutes=15 * step)
        found.append(
            ObservationV1(
                entity_id=f"urn:ngsi-ld:WeatherObserved:bench-{entity}",
                entity_type="WeatherObserved",
                attributes=[
                    ObservedAttribute(
                        name=name,
                        value=round(10 + (n * 7 + i) % 300 / 10, 1),
                        observed_at=at,
                        unit_code="CEL" if i == 0 else None,
                    )
                    for i, name in enumerate(ATTRIBUTES)
                ],
            )
        )
    return found


def copy_text(items: list[ObservationV1], batch: int) -> list[str]:
    """The history rows of the observations as COPY text, one buffer per batch of messages.

    The same rows the ingest writes: expanded attribute name, default instance, observedAt,
    kind, unit code and numeric value (the rest takes the columns' defaults in both runs).
    """
    buffers = []
    for first in range(0, len(items), batch):
        lines = [
            "\t".join(
                (
                    item.entity_id,
                    expand_term(measured.name, VOCABULARY),
                    "@none",
                    measured.observed_at.isoformat(),
                    measured.kind,
                    measured.unit_code or "\\N",
                    repr(float(measured.value)),
                )
            )
            + "\n"
            for item in items[first : first + batch]
            for measured in item.attributes
        ]
        buffers.append("".join(lines))
    return buffers


@dataclass
class Run:
    """One measured run: wall-clock seconds and CPU seconds of this process and the server."""

    wall: float
    client_cpu: float
    server_cpu: float | None


class Clock:
    """Wall clock plus CPU time of this process and (embedded server) of PostgreSQL.

    CPU time hardly depends on what else the machine runs, so it says what an idle machine
    would do when wall-clock figures are disturbed by other work on the same cores.
    """

    def __init__(self, server_cpu: Callable[[], float] | None) -> None:
        self._server_cpu = server_cpu
        self._start = (0.0, 0.0, 0.0)

    def start(self) -> None:
        server = self._server_cpu() if self._server_cpu else 0.0
        self._start = (time.perf_counter(), time.process_time(), server)

    def stop(self) -> Run:
        wall, client, server = self._start
        return Run(
            time.perf_counter() - wall,
            time.process_time() - client,
            self._server_cpu() - server if self._server_cpu else None,
        )


def postgres_cpu(data_dir: Path) -> Callable[[], float]:
    """CPU seconds used so far by the server's processes (postmaster and its children)."""
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        root = int((data_dir / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
        total = 0
        for pid in [root, *map(int, children)]:
            with contextlib.suppress(FileNotFoundError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / tick

    return read


def run_ingest(
    store: KnowledgeStore,
    bus: Bus,
    items: list[ObservationV1],
    batch: int,
    consumers: int,
    clock: Clock,
) -> Run:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    topic = Topic(f"bench.observations.{uuid.uuid4().hex}.v1", ObservationV1, "entity id", (), ())
    store.tenants.ensure(tenant)  # tenant creation is a one-off, not ingest
    records = [
        Record(
            topic.name,
            item.entity_id,
            topic.encode(topic.envelope(item, source="bench", tenant=tenant)),
        )
        for item in items
    ]
    group = f"bench-{uuid.uuid4().hex}"
    handled = threading.Semaphore(0)
    specs = []
    for spec in ingest_consumers(store, bus, count=consumers):
        specs.append(
            replace(
                spec,
                topics=[topic],
                group=group,
                max_batch=batch,
                handler=_counting(spec.handler, handled),
            )
        )
    runners = [ConsumerRunner(bus, spec) for spec in specs]
    # The workload (the envelopes as pydantic models and the in-memory bus's log) would
    # otherwise be walked by every full garbage collection during the run: a cost of this
    # set-up, not of a consumer reading from Kafka. What the consumers allocate is collected.
    gc.collect()
    gc.freeze()
    try:
        # Every member joins the group before anything is published: no rebalance (and
        # redelivery) happens inside the measured window.
        for runner in runners:
            runner.start()
        if not isinstance(bus, MemoryBus):
            time.sleep(10)  # a broker's group join takes seconds (docs/environment)
        bus.publish(records)
        gc.freeze()  # and the bus's log of them (freezing is a list splice: instant)
        clock.start()
        for _ in range(len(items)):
            if not handled.acquire(timeout=120):
                raise RuntimeError("the ingest consumers stopped making progress")
        if isinstance(bus, MemoryBus):  # the last commit, where the bus can tell
            while sum(bus.committed(group).values()) < len(items):
                time.sleep(0.001)
        run = clock.stop()
    finally:
        for runner in runners:
            runner.stop()
        gc.unfreeze()
    if any(runner.failures for runner in runners):
        raise RuntimeError("an ingest batch failed during the run")
    return run


def _counting(handler: Handler, handled: threading.Semaphore) -> Handler:
    """The handler, releasing ``handled`` once per message it applied."""

    def handle(messages: Sequence[Message]) -> None:
        handler(messages)
        handled.release(len(messages))

    return handle


def run_copy(store: KnowledgeStore, buffers: list[str], clock: Clock) -> Run:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    schema = store.tenants.ensure(tenant)
    clock.start()
    for text in buffers:
        with store.engine.begin() as connection:
            dbapi = connection.connection.dbapi_connection
            assert dbapi is not None
            with dbapi.cursor() as cursor:
                cursor.copy_expert(
                    f'COPY "{schema}".attribute_instances ({", ".join(COLUMNS)}) FROM STDIN',
                    io.StringIO(text),
                )
    return clock.stop()


@contextlib.contextmanager
def database(url: str | None, *, fsync: bool) -> Iterator[tuple[str, Callable[[], float] | None]]:
    """A database URL, and how to read the server's CPU time when we started it."""
    if url:
        yield url, None
        return
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-ingest-"))
    base.chmod(0o755)  # the postgres user must traverse it
    server = EmbeddedPostgres(base / "data", durable=fsync)
    try:
        server.start()
        server.create_database("bench")
        yield server.url("bench"), postgres_cpu(base / "data")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=KnowledgeSettings().knowledge_ingest_batch)
    parser.add_argument(
        "--consumers",
        default=str(KnowledgeSettings().knowledge_ingest_consumers),
        help="members of the ingest group (threads of this process); a comma list such as "
        "1,2 measures each count in every round, interleaved",
    )
    parser.add_argument("--database-url")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: the in-memory bus)")
    parser.add_argument("--no-fsync", action="store_true", help="embedded server without fsync")
    args = parser.parse_args()
    counts = [int(count) for count in args.consumers.split(",")]

    items = observations(args.messages, args.entities)
    rows = args.messages * len(ATTRIBUTES)
    buffers = copy_text(items, args.batch)
    with database(args.database_url, fsync=not args.no_fsync) as (url, server_cpu):
        clock = Clock(server_cpu)
        upgrade(url, [KnowledgeLayer()])
        store = KnowledgeStore.from_url(libpq_url(url))
        bus: Bus = (
            KafkaBus(
                args.bootstrap,
                partitions=6,
                consumer_tuning=ConsumerTuning(session_timeout_ms=2000, heartbeat_interval_ms=500),
            )
            if args.bootstrap
            else MemoryBus(partitions=6)
        )
        ingest: dict[int, list[Run]] = {count: [] for count in counts}
        raw: list[Run] = []
        try:
            for _ in range(args.rounds):
                for count in counts:
                    ingest[count].append(run_ingest(store, bus, items, args.batch, count, clock))
                raw.append(run_copy(store, buffers, clock))
        finally:
            bus.close()
            store.close()
    report(args, rows, ingest, raw)


def report(
    args: argparse.Namespace, rows: int, ingest: dict[int, list[Run]], raw: list[Run]
) -> None:
    print(
        f"workload: {args.messages:,} messages x {len(ATTRIBUTES)} attributes = {rows:,} "
        "observations (1 observation = 1 attribute value = 1 history row) "
        f"over {args.entities:,} entities, batches of {args.batch} messages, "
        f"bus: {'Kafka ' + args.bootstrap if args.bootstrap else 'memory'}, "
        f"fsync {'off' if args.no_fsync else 'on'}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'(best round)':26}{'seconds':>9}{'observations/s':>16}{'messages/s':>12}"
        f"{'client CPU µs/obs':>19}{'server CPU µs/obs':>19}"
    )
    best_raw = min(raw, key=lambda run: run.wall)
    lines = [
        (f"(a) ingest, {count} consumer{'s' if count > 1 else ''}", min(runs, key=lambda r: r.wall))
        for count, runs in ingest.items()
    ]
    for label, run in [*lines, ("(b) raw COPY", best_raw)]:
        server = "-" if run.server_cpu is None else f"{run.server_cpu / rows * 1e6:.1f}"
        print(
            f"{label:26}{run.wall:>9.2f}{rows / run.wall:>16,.0f}"
            f"{args.messages / run.wall:>12,.0f}{run.client_cpu / rows * 1e6:>19.1f}{server:>19}"
        )
    print(f"rounds, observations/s: raw COPY {', '.join(f'{rows / r.wall:,.0f}' for r in raw)}")
    for count, runs in ingest.items():
        ratios = ", ".join(
            f"{raw_run.wall / run.wall:.0%}" for run, raw_run in zip(runs, raw, strict=True)
        )
        print(
            f"  ingest, {count} consumer(s): {', '.join(f'{rows / r.wall:,.0f}' for r in runs)}"
            f"  (of the same round's raw COPY: {ratios})"
        )
    for label, run in lines:
        text = f"{label}: {best_raw.wall / run.wall:.0%} of raw COPY by wall clock (best rounds)"
        if run.server_cpu is not None and best_raw.server_cpu is not None:
            ingest_cpu = run.client_cpu + run.server_cpu
            raw_cpu = best_raw.client_cpu + best_raw.server_cpu
            text += (
                f"; by CPU time (client + server) {rows / ingest_cpu:,.0f} observations per "
                f"CPU-second against {rows / raw_cpu:,.0f} ({raw_cpu / ingest_cpu:.0%})"
            )
        print(text)


if __name__ == "__main__":
    main()
