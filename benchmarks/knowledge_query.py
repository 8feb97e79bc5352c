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

(a) through the query package the facade uses: parse the parameters, build the statement,
    execute, fetch (SQLAlchemy on psycopg2);
(b) the same query hand-written in SQL, with the same plan shape (geo candidates first),
    run with a psycopg2 cursor: the floor, without any Python query building;
(c) as (a) with count=true (the total comes with the page: ``with_total``);
(d) as (a) without ``prefer_serial_plans``: PostgreSQL may start parallel workers.

(a), (c) and (d) open one transaction per query, as the facade does per request; (b) runs
in autocommit with parallel workers off.

Each round runs the four on the same random point, in a rotating order, so the database's
caches favour none of them. With ``--proposed-index`` they are measured again after adding
a GiST index on ``attributes (name, geometry)`` (``btree_gist``), which the store does not
have yet: it shows what that index would change. Figures — queries per second, p50/p95/p99 latency —
are printed, never asserted (``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
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
from sqlalchemy import func, insert, select

from cityos.embedded import EmbeddedPostgres
from cityos.migrate import upgrade
from cityos_kernel.database import libpq_url
from cityos_knowledge.entities.attributes import attribute_row
from cityos_knowledge.entities.repository import insert_new_entities, refresh_documents
from cityos_knowledge.layer import KnowledgeLayer
from cityos_knowledge.query import (
    count_entities,
    parse_entity_query,
    prefer_serial_plans,
    select_entities,
)
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
        connection.exec_driver_sql(f'VACUUM ANALYZE "{schema}".entities')
        connection.exec_driver_sql(f'VACUUM ANALYZE "{schema}".attributes')
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


RAW_SQL = """
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


class Measured:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.results = 0

    def run(self, call: Callable[[dict[str, str]], int], params: dict[str, str]) -> None:
        started = time.perf_counter()
        self.results += call(params)
        self.latencies.append(time.perf_counter() - started)

    def report(self) -> str:
        ordered = sorted(self.latencies)
        per_second = len(ordered) / sum(ordered)

        def percentile(fraction: float) -> float:
            return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

        return (
            f"{self.name:<44} {per_second:>8.0f} q/s   p50 {percentile(0.5):6.2f} ms   "
            f"p95 {percentile(0.95):6.2f} ms   p99 {percentile(0.99):6.2f} ms   "
            f"mean rows {self.results / len(ordered):5.1f}"
        )


def measure(store: KnowledgeStore, schema: str, url: str, queries: int) -> None:
    package = Measured("(a) query package (parse+build+execute)")
    raw = Measured("(b) hand-written SQL, psycopg2 cursor")
    counted = Measured("(c) query package with count=true")
    parallel = Measured("(d) as (a), parallel plans allowed")
    raw_connection = psycopg2.connect(libpq_url(url))
    raw_connection.autocommit = True
    raw_sql = RAW_SQL.format(schema=f'"{schema}"')
    with store.engine.connect() as connection, raw_connection.cursor() as cursor:
        bound = bind_schema(connection, schema)
        cursor.execute("SET max_parallel_workers_per_gather = 0")

        def through_package(params: dict[str, str]) -> int:
            # One transaction per query, as the facade opens one per request.
            with bound.begin():
                if "serial" in params:
                    prefer_serial_plans(bound)
                query = parse_entity_query(params)
                statement = select_entities(query, expand=expand, with_total=query.count)
                rows = bound.execute(statement).all()
                if query.count and not rows:
                    bound.execute(count_entities(query, expand=expand)).scalar_one()
            return len(rows)

        def hand_written(params: dict[str, str]) -> int:
            lon, lat = (float(part) for part in params["coordinates"].strip("[]").split(","))
            margin = 500.0 / 110_000.0
            lon_margin = margin / math.cos(math.radians(abs(lat) + margin))
            cursor.execute(
                raw_sql,
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
            return len(cursor.fetchall())

        rng = random.Random(7)
        for warm in range(200):  # plans, caches and SQLAlchemy's statement cache
            through_package({**parameters(rng, count=warm % 2 == 0), "serial": "yes"})
            hand_written(parameters(rng))
        rng = random.Random(11)
        variants: list[tuple[Measured, Callable[[dict[str, str]], int], dict[str, str]]] = [
            (package, through_package, {"serial": "yes"}),
            (raw, hand_written, {}),
            (counted, through_package, {"count": "true", "serial": "yes"}),
            (parallel, through_package, {}),
        ]
        for round_number in range(queries):
            params = parameters(rng)
            # The same point for every variant, in a rotating order: whichever runs first
            # reads the pages the others then find in shared buffers.
            start = round_number % len(variants)
            for measured, call, extra in variants[start:] + variants[:start]:
                measured.run(call, {**params, **extra})
    raw_connection.close()
    for measured in (package, raw, counted, parallel):
        print(measured.report())
    ratio = statistics.fmean(raw.latencies) / statistics.fmean(package.latencies)
    print(f"query package throughput = {ratio:.0%} of the hand-written SQL")


def add_proposed_index(store: KnowledgeStore, schema: str) -> None:
    with store.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS btree_gist")
        connection.exec_driver_sql(
            f'CREATE INDEX IF NOT EXISTS attributes_name_geometry ON "{schema}".attributes '
            "USING gist (name, geometry) WHERE geometry IS NOT NULL"
        )
        connection.exec_driver_sql(f'ANALYZE "{schema}".attributes')


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
    parser.add_argument("--proposed-index", action="store_true")
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
        store = KnowledgeStore.from_url(url)
        try:
            measure(store, schema, url, args.queries)
            if args.proposed_index:
                add_proposed_index(store, schema)
                print("with the proposed GiST index on attributes (name, geometry):")
                measure(store, schema, url, args.queries)
        finally:
            store.close()


if __name__ == "__main__":
    main()
