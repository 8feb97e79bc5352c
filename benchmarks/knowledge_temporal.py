"""Knowledge temporal store: aggregated temporal retrieval over a year of 15-minute data.

    uv run python benchmarks/knowledge_temporal.py [--entities 30] [--runs 30]
                                                   [--database-url postgresql://…]

Starts an embedded PostgreSQL+PostGIS (or uses ``--database-url``; the run creates and
leaves a tenant schema ``bench-temporal-*`` there), applies the migrations, creates
``--entities`` sensors through the service facade and COPies one year of 15-minute
temperature readings for each into the history (35,040 instances per entity; the load is
set-up, not measured). Then, through the facade (``KnowledgeService``), measured from a
single client:

(c1) ``retrieve_temporal`` of ONE entity, ``aggrMethods=avg,min,max``,
     ``aggrPeriodDuration=P1D`` over the year (365 daily periods from ~35k instances);
(c2) ``query_temporal`` of ALL the entities (``type=Sensor``, one page), same aggregation
     (~1M instances);

each next to the same aggregation hand-written in SQL and run with a psycopg2 cursor (the
floor). Without TimescaleDB the history is the monthly-partitioned table and both read it
raw; with TimescaleDB the facade would read the daily continuous aggregate instead. Runs
interleave; p50/p95 are printed, never asserted (``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2

from cityos.embedded import EmbeddedPostgres
from cityos.migrate import upgrade
from cityos_kernel.database import libpq_url
from cityos_knowledge.layer import KnowledgeLayer
from cityos_knowledge.service import KnowledgeService, parse_entity_query, parse_temporal_query
from cityos_knowledge.store.database import KnowledgeStore
from cityos_knowledge.store.history import month_start, next_month

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
TEMPERATURE = VOCAB + "temperature"
YEAR = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
PER_ENTITY = 365 * 24 * 4

WINDOW = {
    "aggrMethods": "avg,min,max",
    "aggrPeriodDuration": "P1D",
    "timerel": "between",
    "timeAt": "2025-01-01T00:00:00Z",
    "endTimeAt": "2026-01-01T00:00:00Z",
}

RAW_SQL = """
SELECT entity_id, date_bin('1 day', observed_at, %(origin)s) AS day,
       avg(value_number), min(value_number), max(value_number)
FROM "{schema}".attribute_instances
WHERE entity_id = ANY(%(ids)s) AND name = %(name)s
  AND observed_at >= %(start)s AND observed_at < %(end)s
GROUP BY entity_id, day ORDER BY entity_id, day
"""


def load(store: KnowledgeStore, service: KnowledgeService, tenant: str, entities: int) -> str:
    ids = [f"urn:ngsi-ld:Sensor:bench-{n}" for n in range(entities)]
    for entity_id in ids:
        service.create_entity(
            tenant,
            {"id": entity_id, "type": VOCAB + "Sensor",
             TEMPERATURE: {"type": "Property", "value": 0.0, "unitCode": "CEL"}},
        )  # fmt: skip
    schema = store.tenants.lookup(tenant)
    months, month = [], month_start(YEAR)
    while month < date(2026, 2, 1):
        months.append(month)
        month = next_month(month)
    store.partitions.ensure(schema, months)
    for entity_id in ids:
        buffer = io.StringIO()
        for step in range(PER_ENTITY):
            at = YEAR + step * STEP
            value = 15 + 10 * ((step % 96) / 96) + (hash((entity_id, step // 96)) % 50) / 10
            buffer.write(f"{entity_id}\t{TEMPERATURE}\t@none\t{at.isoformat()}\tProperty\t"
                         f"CEL\t{value:.2f}\n")  # fmt: skip
        buffer.seek(0)
        with store.engine.begin() as connection:
            dbapi = connection.connection.dbapi_connection
            assert dbapi is not None
            with dbapi.cursor() as cursor:
                cursor.copy_expert(
                    f'COPY "{schema}".attribute_instances (entity_id, name, dataset_id, '
                    "observed_at, kind, unit_code, value_number) FROM STDIN",
                    buffer,
                )
    with store.engine.begin() as connection:
        connection.exec_driver_sql(f'ANALYZE "{schema}".attribute_instances')
    return schema


def postgres_cpu(data_dir: Path) -> Callable[[], float]:
    """CPU seconds used so far by the embedded server: its processes, and the children it
    has reaped (parallel workers that have exited)."""
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        root = int((data_dir / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
        total = 0
        for pid in [root, *map(int, children)]:
            with contextlib.suppress(FileNotFoundError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
                if pid == root:
                    total += int(fields[13]) + int(fields[14])
        return total / tick

    return read


class Timer:
    def __init__(self, name: str, server_cpu: Callable[[], float] | None) -> None:
        self.name = name
        self.seconds: list[float] = []
        self.client: list[float] = []
        self.server: list[float] = []
        self._server_cpu = server_cpu

    def run(self, call: Callable[[], int]) -> int:
        server = self._server_cpu() if self._server_cpu else 0.0
        client = time.process_time()
        started = time.perf_counter()
        result = call()
        self.seconds.append(time.perf_counter() - started)
        self.client.append(time.process_time() - client)
        if self._server_cpu:
            self.server.append(self._server_cpu() - server)
        return result

    def line(self) -> str:
        ordered = sorted(self.seconds)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        server = f"{statistics.median(self.server) * 1000:>9.0f}" if self.server else f"{'n/a':>9}"
        return (f"{self.name:44}{statistics.median(ordered) * 1000:>9.1f}"
                f"{p95 * 1000:>9.1f}{len(ordered):>6}"
                f"{statistics.median(self.client) * 1000:>9.0f}{server}")  # fmt: skip


def measure(service: KnowledgeService, url: str, schema: str, tenant: str, runs: int,
            entities: int, server_cpu: Callable[[], float] | None) -> None:  # fmt: skip
    temporal = parse_temporal_query(WINDOW)
    one = "urn:ngsi-ld:Sensor:bench-0"
    everyone = parse_entity_query({"type": "Sensor", "limit": str(entities)})
    ids = [f"urn:ngsi-ld:Sensor:bench-{n}" for n in range(entities)]

    def facade_one() -> int:
        entity = service.retrieve_temporal(tenant, one, temporal, attrs=[TEMPERATURE])
        return len(entity[TEMPERATURE]["avg"])

    def facade_all() -> int:
        page = service.query_temporal(tenant, everyone, temporal, expand=lambda term: VOCAB + term)
        return sum(len(e[TEMPERATURE]["avg"]) for e in page.entities)

    connection = psycopg2.connect(libpq_url(url))
    cursor = connection.cursor()
    sql = RAW_SQL.format(schema=schema)

    def raw(chosen: list[str]) -> Callable[[], int]:
        def call() -> int:
            cursor.execute(
                sql,
                {
                    "origin": YEAR,
                    "ids": chosen,
                    "name": TEMPERATURE,
                    "start": YEAR,
                    "end": datetime(2026, 1, 1, tzinfo=UTC),
                },
            )
            return len(cursor.fetchall())

        return call  # fmt: skip

    # (timer, call, expected periods, whether it is the heavy ~1M-instance query)
    timers = [
        (Timer("(c1) facade, 1 entity, ~35k instances", server_cpu), facade_one, 365, False),
        (Timer("     raw SQL, same", server_cpu), raw([one]), 365, False),
        (Timer(f"(c2) facade, {entities} entities, ~{entities * PER_ENTITY / 1e6:.2f}M",
               server_cpu), facade_all, 365 * entities, True),
        (Timer("     raw SQL, same", server_cpu), raw(ids), 365 * entities, True),
    ]  # fmt: skip
    for timer, call, expected, _ in timers:  # warm-up, and a check of the answer
        assert call() == expected, timer.name
    heavy_runs = max(5, runs // 3)
    for round_number in range(runs):
        for timer, call, _, heavy in timers:
            if not heavy or round_number < heavy_runs:
                timer.run(call)
    connection.close()
    print(f"{'':44}{'p50 ms':>9}{'p95 ms':>9}{'runs':>6}{'client':>9}{'server':>9}"
          "   (median CPU ms per run)")  # fmt: skip
    for timer, *_ in timers:
        print(timer.line())
    for facade, raw_sql in ((timers[0][0], timers[1][0]), (timers[2][0], timers[3][0])):
        ratio = statistics.median(facade.seconds) / statistics.median(raw_sql.seconds)
        print(f"{facade.name[:4]} facade / raw SQL p50: x{ratio:.2f}")
    print(f"load average {Path('/proc/loadavg').read_text().split()[0]}")


@contextlib.contextmanager
def database(url: str | None) -> Iterator[tuple[str, Callable[[], float] | None]]:
    if url:
        yield url, None
        return
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-temporal-"))
    base.chmod(0o755)  # the postgres user must traverse it
    server = EmbeddedPostgres(base / "data", durable=False)
    try:
        server.start()
        server.create_database("bench")
        yield server.url("bench"), postgres_cpu(base / "data")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with database(args.database_url) as (url, server_cpu):
        upgrade(url, [KnowledgeLayer()])
        store = KnowledgeStore.from_url(libpq_url(url))
        service = KnowledgeService(store)
        tenant = f"bench-temporal-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        schema = load(store, service, tenant, args.entities)
        loaded = time.perf_counter() - started
        print(f"loaded {args.entities * PER_ENTITY:,} instances for {args.entities} entities "
              f"in {loaded:.0f} s; {store.layout.detail}")  # fmt: skip
        try:
            measure(service, url, schema, tenant, args.runs, args.entities, server_cpu)
        finally:
            store.close()


if __name__ == "__main__":
    main()
