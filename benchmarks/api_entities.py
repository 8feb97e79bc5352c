"""NGSI-LD API throughput over real HTTP, next to the knowledge facade called directly.

    uv run python benchmarks/api_entities.py [--entities 100000] [--clients 4] [--seconds 10]

Starts an embedded PostgreSQL+PostGIS (or uses ``--database-url``), applies the migrations,
serves the platform's application with uvicorn on a loopback port and measures, in one run:

(a) partial-update throughput: ``PATCH /ngsi-ld/v1/entities/{id}/attrs/speed`` from
    ``--clients`` concurrent HTTP/1.1 keep-alive clients (httpx, one thread each), over
    1,000 vehicles;
(b) the same updates through the knowledge facade called directly (same process, same
    number of threads): the HTTP layer's overhead is the ratio (b)/(a);
(c) q+geo query throughput through HTTP over ``--entities`` entities:
    ``GET /entities?type=Vehicle&q=speed>50&georel=near;maxDistance==2000&geometry=Point…``
    with random points in the city, from the same clients, with p50/p95 latency;
(d) the HTTP floor: a route that does not touch the store (``/info/sourceIdentity``), i.e.
    what the API layer itself sustains on this machine.

The vehicles are created through the knowledge ingest (observations on the bus), as a
city's devices create them.

Figures are printed, never asserted (``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.embedded import EmbeddedPostgres
from cityos.layers import load_layers
from cityos.migrate import upgrade
from cityos_interoperability.layer import build_services
from cityos_interoperability.ngsild.jsonld.expansion import Expander
from cityos_interoperability.settings import InteroperabilitySettings
from cityos_kernel.bus import Bus, MemoryBus, Record
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import OBSERVATIONS
from cityos_kernel.settings import PlatformSettings

API = "/ngsi-ld/v1"
LAYERS = ("knowledge", "interoperability")
CENTRE = (-3.7038, 40.4168)  # Madrid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-api-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", durable=False)
    server.start()
    try:
        server.create_database("bench")
        yield server.url("bench")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def serve(database_url: str) -> Iterator[tuple[str, Bus]]:
    platform = build_platform(
        PlatformSettings(env="development", auth="off", log_level="WARNING"),
        load_layers(LAYERS),
        database_url=database_url,
        bus=MemoryBus(),
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(platform), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", platform.bus
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def vehicle(index: int) -> dict[str, Any]:
    rng = random.Random(index)
    return {
        "id": f"urn:ngsi-ld:Vehicle:{index}",
        "type": "Vehicle",
        "speed": {"type": "Property", "value": rng.uniform(0, 120)},
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Point",
                "coordinates": [
                    CENTRE[0] + rng.uniform(-0.1, 0.1),
                    CENTRE[1] + rng.uniform(-0.1, 0.1),
                ],
            },
        },
    }


def load(base: str, bus: Bus, count: int) -> None:
    """Create the vehicles the way a city does: observations through the knowledge ingest.

    (Creating 100k entities through ``/entityOperations`` is bounded by the facade's batch
    writes, one entity at a time; the ingest writes set-based.)
    """
    observed_at = datetime.now(UTC)
    for start in range(0, count, 2000):
        records = []
        for index in range(start, min(count, start + 2000)):
            entity = vehicle(index)
            payload = ObservationV1(
                entity_id=entity["id"],
                entity_type="Vehicle",
                attributes=[
                    ObservedAttribute(
                        name="speed", value=entity["speed"]["value"], observed_at=observed_at
                    ),
                    ObservedAttribute(
                        name="location",
                        kind="GeoProperty",
                        value=entity["location"]["value"],
                        observed_at=observed_at,
                    ),
                ],
            )
            envelope = OBSERVATIONS.envelope(payload, source="benchmark")
            records.append(Record(OBSERVATIONS.name, entity["id"], OBSERVATIONS.encode(envelope)))
        bus.publish(records)
    with httpx.Client(base_url=base, timeout=60) as client:
        while True:
            response = client.get(
                f"{API}/entities", params={"type": "Vehicle", "count": "true", "limit": 0}
            )
            if (
                response.status_code == 200
                and int(response.headers["NGSILD-Results-Count"]) >= count
            ):
                return
            time.sleep(1)


def run_clients(
    clients: int, seconds: float, work: Callable[[random.Random], None]
) -> tuple[float, list[float]]:
    """Operations per second and per-operation latencies (ms) of ``clients`` threads."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def worker(slot: int) -> None:
        rng = random.Random(slot)
        while time.monotonic() < stop:
            started = time.perf_counter()
            work(rng)
            latencies[slot].append((time.perf_counter() - started) * 1000)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    flat = [value for slot in latencies for value in slot]
    return len(flat) / elapsed, flat


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    with database(args.database_url) as url:
        upgrade(url, load_layers(LAYERS))
        with serve(url) as (base, bus):
            started = time.monotonic()
            load(base, bus, args.entities)
            print(f"loaded {args.entities} entities in {time.monotonic() - started:.1f} s")

            local = threading.local()

            def client() -> httpx.Client:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=base, timeout=30)
                return local.client  # type: ignore[no-any-return]

            def http_update(rng: random.Random) -> None:
                entity = f"urn:ngsi-ld:Vehicle:{rng.randrange(1000)}"
                response = client().patch(
                    f"{API}/entities/{entity}/attrs/speed", json={"value": rng.uniform(0, 120)}
                )
                if response.status_code != 204:
                    raise RuntimeError(response.text)

            rate, latencies = run_clients(args.clients, args.seconds, http_update)
            print(
                f"(a) HTTP partial updates: {rate:8.0f}/s  p50 {percentile(latencies, 0.5):.1f} ms"
                f"  p95 {percentile(latencies, 0.95):.1f} ms  ({args.clients} clients)"
            )

            services = build_services(InteroperabilitySettings(), url)
            facade = services.knowledge
            if facade is None:
                raise SystemExit("the knowledge facade is not available in this build")
            terms = services.resolver.core
            name = terms.expand("speed")

            def direct_update(rng: random.Random) -> None:
                entity = f"urn:ngsi-ld:Vehicle:{rng.randrange(1000)}"
                fragment = Expander(terms, partial=True).attribute(
                    {"value": rng.uniform(0, 120)}, "speed"
                )
                facade.patch_attribute(None, entity, name, fragment)

            direct, _ = run_clients(args.clients, args.seconds, direct_update)
            print(
                f"(b) facade partial updates: {direct:8.0f}/s  HTTP overhead x{direct / rate:.2f}"
            )

            def http_floor(rng: random.Random) -> None:
                response = client().get(f"{API}/info/sourceIdentity")
                if response.status_code != 200:
                    raise RuntimeError(response.text)

            floor, latencies = run_clients(args.clients, args.seconds, http_floor)
            print(
                f"(d) HTTP floor (GET /info/sourceIdentity, no store): {floor:8.0f}/s"
                f"  p50 {percentile(latencies, 0.5):.1f} ms"
            )

            def http_query(rng: random.Random) -> None:
                lon = CENTRE[0] + rng.uniform(-0.1, 0.1)
                lat = CENTRE[1] + rng.uniform(-0.1, 0.1)
                response = client().get(
                    f"{API}/entities",
                    params={
                        "type": "Vehicle",
                        "q": "speed>50",
                        "georel": "near;maxDistance==2000",
                        "geometry": "Point",
                        "coordinates": f"[{lon},{lat}]",
                        "limit": 20,
                    },
                )
                if response.status_code != 200:
                    raise RuntimeError(response.text)

            rate, latencies = run_clients(args.clients, args.seconds, http_query)
            print(
                f"(c) HTTP q+geo queries over {args.entities}: {rate:8.0f}/s"
                f"  p50 {percentile(latencies, 0.5):.1f} ms"
                f"  p95 {percentile(latencies, 0.95):.1f} ms"
                f"  mean {statistics.fmean(latencies):.1f} ms"
            )


if __name__ == "__main__":
    main()
