"""Knowledge query engine: q+geo Query Entities over 100,000 entities, next to raw SQL.

    uv run python benchmarks/knowledge_query.py [--entities 100000] [--queries 2000]
                                                [--database-url postgresql://…]

Starts an embedded PostgreSQL+PostGIS (or uses ``--database-url``, where a tenant that
already holds exactly ``--entities`` entities is reused), applies the migrations and writes
``--entities`` entities into one tenant through the store's write path
(AirQualityObserved 40 %, ParkingSpot 30 %, Streetlight 30 %, spread over 20 x 17 km of
Madrid). Then, from a single client, it measures one page (limit 20, ordered by id) of

    type=AirQualityObserved&q=NO2>60&georel=near;maxDistance==500
        &geometry=Point&coordinates=[<random point in the city>]

(a) through the facade, as the API calls it: parse the parameters, then
    ``KnowledgeService.query_entities`` (pooled connection, SQL compiled once per query
    shape and run with its values bound, autocommit, serial plans set per connection; a
    bounded ``near`` query reads ``entity_locations`` with two planar bounds before the
    spheroid (ADR 0064) and runs as a prepared statement with a generic plan and the
    shape's constants inlined, ADR 0065; documents decoded with orjson, ADR 0063);
(b) the same statement hand-written in SQL (``PREPARE_SQL``: keep it the facade's statement
    when that one changes), prepared once with a generic plan, run with a psycopg2 cursor
    whose documents are decoded as the facade's are: the floor, without any Python query
    building;
(c) as (a) with count=true (the total comes with the page: ``with_total``);
(d) the query package without the statement cache: parse, build the SQLAlchemy statement,
    execute it in a transaction (what the facade did before ADR 0017);
(e) the hand-written SQL of before ADR 0064/0065: candidates read from ``attributes`` (one
    heap page each), ``ST_DWithin`` on the spheroid for each, planned per query.

Each round runs the five on the same random point, in a rotating order, so the database's
caches favour none of them. Figures — queries per second, p50/p95/p99 latency, CPU per
query of the client and of the PostgreSQL backend serving it — are printed, never asserted
(``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
from sqlalchemy import func, insert, select

from cityos.embedded import EmbeddedPostgres
from cityos.migrate import upgrade
from cityos_kernel.database import libpq_url, loads_json
from cityos_knowledge.entities.attributes import attribute_row
from cityos_knowledge.entities.repository import insert_new_entities, refresh_documents
from cityos_knowledge.layer import KnowledgeLayer
from cityos_knowledge.query import (
    count_entities,
    parse_entity_query,
    prefer_serial_plans,
    select_entities,
)
from cityos_knowledge.query.geo import GeometryType, GeoQuery, GeoRelation
from cityos_knowledge.query.selection import near_bounds, search_box
from cityos_knowledge.service import KnowledgeService
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import attributes, entities

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
WEST, EAST, SOUTH, NORTH = -3.80, -3.60, 40.35, 40.50
CHUNK = 5000
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def expand(term: str) -> str:
    return term if ":" in term else VOCAB + term


def _entity(index: int, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    location = {
        "type": "GeoProperty",
        "value": {
            "type": "Point",
            "coordinates": [round(rng.uniform(WEST, EAST), 6), round(rng.uniform(SOUTH, NORTH), 6)],
        },
    }
    roll = index % 10
    if roll < 4:
        kind = "AirQualityObserved"
        members: dict[str, Any] = {
            "NO2": {"type": "Property", "value": round(rng.uniform(0, 100), 1), "unitCode": "GQ"},
            "temperature": {"type": "Property", "value": round(rng.uniform(5, 35), 1)},
            "airQualityLevel": {
                "type": "Property",
                "value": rng.choice(["good", "moderate", "poor"]),
            },
        }
    elif roll < 7:
        kind = "ParkingSpot"
        members = {"status": {"type": "Property", "value": rng.choice(["free", "occupied"])}}
    else:
        kind = "Streetlight"
        members = {
            "powerState": {"type": "Property", "value": rng.choice(["on", "off"])},
            "lanternHeight": {"type": "Property", "value": round(rng.uniform(3, 12), 1)},
        }
    members["location"] = location
    return f"urn:ngsi-ld:{kind}:{index:06d}", kind, members


def populate(store: KnowledgeStore, schema: str, count: int) -> None:
    rng = random.Random(42)
    started = time.perf_counter()
    for first in range(0, count, CHUNK):
        batch = [_entity(index, rng) for index in range(first, min(count, first + CHUNK))]
        with store.engine.begin() as connection:
            bound = bind_schema(connection, schema)
            insert_new_entities(bound, [(i, [expand(kind)], None) for i, kind, _ in batch], NOW)
            rows = [
                {
                    "entity_id": entity_id,
                    **attribute_row(expand(name), member).columns(),
                    "created_at": NOW,
                    "modified_at": NOW,
                }
                for entity_id, _, members in batch
                for name, member in members.items()
            ]
            bound.execute(insert(attributes), rows)
            refresh_documents(bound, schema, [entity_id for entity_id, _, _ in batch], NOW)
    with store.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("entities", "attributes", "entity_locations"):
            connection.exec_driver_sql(f'VACUUM ANALYZE "{schema}".{table}')
    print(f"wrote {count} entities in {time.perf_counter() - started:.1f} s")


def parameters(rng: random.Random, *, count: bool = False) -> dict[str, str]:
    lon, lat = rng.uniform(WEST + 0.01, EAST - 0.01), rng.uniform(SOUTH + 0.01, NORTH - 0.01)
    query = {
        "type": "AirQualityObserved",
        "q": "NO2>60",
        "georel": "near;maxDistance==500",
        "geometry": "Point",
        "coordinates": f"[{lon:.5f},{lat:.5f}]",
    }
    if count:
        query["count"] = "true"
    return query


#: The facade's statement written by hand (ADR 0064, 0065): candidates from the narrow
#: ``entity_locations`` (index-only scan of Points in the search box; a planar bound that
#: proves a position within the distance, another that proves it beyond, the spheroid only
#: between them; other geometries from their own index), prepared once, generic plan. Keep
#: it the same statement as the facade's (``query/selection.py``) when that one changes.
PREPARE_SQL = """
PREPARE hand_written (text[], text, float8, text, float8, float8, float8, float8,
                      float8, float8, float8, float8, float8, float8, float8) AS
SELECT e.entity FROM {schema}.entities AS e
WHERE e.deleted_at IS NULL AND e.types @> $1
  AND EXISTS (SELECT 1 FROM {schema}.attributes AS a
              WHERE a.entity_id = e.id AND a.name = $2 AND a.value IS NOT NULL
                AND NOT (a.kind = ANY (ARRAY['Relationship', 'ListRelationship']))
                AND a.value_number > $3)
  AND e.id = ANY(ARRAY(
        SELECT g.entity_id FROM {schema}.entity_locations AS g
        WHERE g.name = $4 AND g.position <@ box(point($5, $6), point($7, $8))
          AND ((g.position[0] - $9) * (g.position[0] - $9) * $11
               + (g.position[1] - $10) * (g.position[1] - $10) * $12 <= 1.0
               OR (g.position[0] - $9) * (g.position[0] - $9) * $13
                  + (g.position[1] - $10) * (g.position[1] - $10) * $14 <= 1.0
                  AND ST_DWithin(geography(ST_SetSRID(ST_MakePoint(g.position[0],
                                                                   g.position[1]), 4326)),
                                 (SELECT geography(ST_SetSRID(ST_MakePoint($9, $10), 4326))),
                                 $15))
        UNION ALL
        SELECT g.entity_id FROM {schema}.entity_locations AS g
        WHERE g.name = $4 AND g.position IS NULL
          AND g.geometry && ST_MakeEnvelope($5, $6, $7, $8, 4326)
          AND ST_DWithin(geography(g.geometry),
                         (SELECT geography(ST_SetSRID(ST_MakePoint($9, $10), 4326))), $15)))
ORDER BY e.id LIMIT 20 OFFSET 0
"""
EXECUTE_SQL = "EXECUTE hand_written (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"

#: The same before ADR 0064: candidates from ``attributes`` (one heap page each), spheroid
#: for every one, planned per query.
ATTRIBUTES_SQL = """
SELECT e.id, e.entity FROM {schema}.entities AS e
WHERE e.deleted_at IS NULL AND e.types @> ARRAY[%(type)s]
  AND EXISTS (SELECT 1 FROM {schema}.attributes AS a
              WHERE a.entity_id = e.id AND a.name = %(attribute)s AND a.value_number > %(number)s)
  AND e.id = ANY(ARRAY(
        SELECT g.entity_id FROM {schema}.attributes AS g
        WHERE g.name = %(location)s
          AND g.geometry && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)
          AND ST_DWithin(g.geometry::geography,
                         ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography,
                         %(metres)s)))
ORDER BY e.id LIMIT 20
"""


def backend_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a local PostgreSQL backend has used; None if not local."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Measured:
    """Latencies of one variant, its client CPU and the CPU of the backend serving it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.client_cpu = 0.0
        self.server_cpu: float | None = 0.0
        self.backend: int | None = None
        self.results = 0

    def run(self, call: Callable[[dict[str, str]], int], params: dict[str, str]) -> None:
        server = backend_cpu(self.backend) if self.backend is not None else None
        cpu = time.process_time()
        started = time.perf_counter()
        self.results += call(params)
        self.latencies.append(time.perf_counter() - started)
        self.client_cpu += time.process_time() - cpu
        after = backend_cpu(self.backend) if self.backend is not None else None
        if server is None or after is None or self.server_cpu is None:
            self.server_cpu = None
        else:
            self.server_cpu += after - server

    def report(self) -> str:
        ordered = sorted(self.latencies)
        per_second = len(ordered) / sum(ordered)

        def percentile(fraction: float) -> float:
            return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

        count = len(ordered)
        server = "n/a" if self.server_cpu is None else f"{self.server_cpu / count * 1000:.2f}"
        return (
            f"{self.name:<40} {per_second:>6.0f} q/s  p50 {percentile(0.5):6.2f} ms  "
            f"p95 {percentile(0.95):6.2f} ms  p99 {percentile(0.99):6.2f} ms  "
            f"CPU/query client {self.client_cpu / count * 1000:.2f} + server {server} ms  "
            f"rows {self.results / count:4.1f}"
        )


def measure(url: str, schema: str, tenant: str, queries: int) -> None:
    # Each variant on its own connection, so that its backend's CPU time is its own.
    facade = Measured("(a) facade query_entities (parse+run)")
    raw = Measured("(b) hand-written SQL, psycopg2 cursor")
    counted = Measured("(c) facade with count=true")
    uncached = Measured("(d) query package, built per query")
    service = KnowledgeService.from_url(url, pool_size=1)
    counting = KnowledgeService.from_url(url, pool_size=1)
    store = KnowledgeStore.from_url(url, pool_size=1)
    before = Measured("(e) hand-written, before ADR 0064/0065")
    raw_connection = psycopg2.connect(libpq_url(url))
    raw_connection.autocommit = True
    # Documents decoded as the platform's engines decode them (orjson, ``loads_json``).
    psycopg2.extras.register_default_jsonb(raw_connection, loads=loads_json)
    old_connection = psycopg2.connect(libpq_url(url))
    old_connection.autocommit = True
    attributes_sql = ATTRIBUTES_SQL.format(schema=f'"{schema}"')
    with (
        store.engine.connect() as connection,
        raw_connection.cursor() as cursor,
        old_connection.cursor() as old_cursor,
    ):
        bound = bind_schema(connection, schema)
        cursor.execute("SET max_parallel_workers_per_gather = 0")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(PREPARE_SQL.format(schema=f'"{schema}"'))
        old_cursor.execute("SET max_parallel_workers_per_gather = 0")

        def through_facade(params: dict[str, str]) -> int:
            chosen = counting if "count" in params else service
            page = chosen.query_entities(tenant, parse_entity_query(params), expand=expand)
            return len(page.entities)

        def through_package(params: dict[str, str]) -> int:
            # One transaction per query, as the facade opened one per request.
            with bound.begin():
                prefer_serial_plans(bound)
                query = parse_entity_query(params)
                statement = select_entities(query, expand=expand, with_total=query.count)
                rows = bound.execute(statement).all()
                if query.count and not rows:
                    bound.execute(count_entities(query, expand=expand)).scalar_one()
            return len(rows)

        def hand_written(params: dict[str, str]) -> int:
            lon, lat = (float(part) for part in params["coordinates"].strip("[]").split(","))
            near = GeoQuery(GeoRelation.NEAR, GeometryType.POINT, [lon, lat], max_distance=500.0)
            west, south, east, north = search_box(near)
            bounds = near_bounds(near)
            cursor.execute(
                EXECUTE_SQL,
                [
                    [expand("AirQualityObserved")],
                    expand("NO2"),
                    60.0,
                    expand("location"),
                    west,
                    south,
                    east,
                    north,
                    lon,
                    lat,
                    bounds.inner_x,
                    bounds.inner_y,
                    bounds.outer_x,
                    bounds.outer_y,
                    500.0,
                ],
            )
            return len(cursor.fetchall())

        def on_attributes(params: dict[str, str]) -> int:
            lon, lat = (float(part) for part in params["coordinates"].strip("[]").split(","))
            margin = 500.0 / 110_000.0
            lon_margin = margin / math.cos(math.radians(abs(lat) + margin))
            old_cursor.execute(
                attributes_sql,
                {
                    "type": expand("AirQualityObserved"),
                    "attribute": expand("NO2"),
                    "number": 60.0,
                    "location": expand("location"),
                    "lon": lon,
                    "lat": lat,
                    "metres": 500.0,
                    "west": lon - lon_margin,
                    "east": lon + lon_margin,
                    "south": lat - margin,
                    "north": lat + margin,
                },
            )
            return len(old_cursor.fetchall())

        rng = random.Random(7)
        for _ in range(200):  # plans, caches, prepared statements, SQLAlchemy's caches
            through_facade(parameters(rng))
            through_facade(parameters(rng, count=True))
            through_package(parameters(rng))
            hand_written(parameters(rng))
            on_attributes(parameters(rng))
        raw.backend = raw_connection.info.backend_pid
        before.backend = old_connection.info.backend_pid
        uncached.backend = bound.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        bound.commit()
        for measured, chosen in ((facade, service), (counted, counting)):
            with chosen._store.engine.connect() as pooled:  # the pool's one connection
                measured.backend = pooled.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        rng = random.Random(11)
        variants: list[tuple[Measured, Callable[[dict[str, str]], int], dict[str, str]]] = [
            (facade, through_facade, {}),
            (raw, hand_written, {}),
            (counted, through_facade, {"count": "true"}),
            (uncached, through_package, {}),
            (before, on_attributes, {}),
        ]
        for round_number in range(queries):
            params = parameters(rng)
            # The same point for every variant, in a rotating order: whichever runs first
            # reads the pages the others then find in shared buffers.
            start = round_number % len(variants)
            for measured, call, extra in variants[start:] + variants[:start]:
                measured.run(call, {**params, **extra})
    raw_connection.close()
    old_connection.close()
    for closing in (service, counting):
        closing.close()
    store.close()
    for measured in (facade, raw, counted, uncached, before):
        print(measured.report())
    ratio = statistics.fmean(raw.latencies) / statistics.fmean(facade.latencies)
    print(f"facade throughput = {ratio:.0%} of the hand-written SQL; load average {_load()}")


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _entity_count(store: KnowledgeStore, schema: str) -> int:
    with store.engine.connect() as connection:
        bound = bind_schema(connection, schema)
        return int(bound.execute(select(func.count()).select_from(entities)).scalar_one())


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-query-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", durable=False)
    try:
        server.start()
        yield server.url("bench")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--database-url")
    parser.add_argument("--tenant", default="bench-query")
    args = parser.parse_args()
    with database(args.database_url) as url:
        upgrade(url, [KnowledgeLayer()])
        loader = KnowledgeStore.from_url(url)
        try:
            schema = loader.tenants.ensure(args.tenant)
            if _entity_count(loader, schema) != args.entities:  # reuse a --database-url run
                populate(loader, schema, args.entities)
        finally:
            loader.close()
        # Measure as a serving process would: without the loader's engine, its statement
        # cache of 5,000-row inserts and their garbage (they slowed every query 2x).
        del loader
        gc.collect()
        measure(url, schema, args.tenant, args.queries)


if __name__ == "__main__":
    main()
