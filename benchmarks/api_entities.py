"""NGSI-LD API throughput over real HTTP, server and load generator in separate processes.

    uv run python benchmarks/api_entities.py [--entities 100000] [--workers 2]
        [--clients 8] [--seconds 10] [--database-url URL]

The deployment it measures is the distributed one (``cityos serve interoperability``):

- ``--workers`` API server processes (uvicorn, the interoperability layer with its knowledge
  facade, ``CITYOS_AUTH=off``), sharing one port with ``SO_REUSEPORT`` as replicas behind a
  load balancer would;
- one knowledge process (this one): the ingest that creates the vehicles and the outbox
  relay that publishes every change event (in-memory bus);
- one load generator process: ``--clients`` HTTP/1.1 keep-alive connections on one asyncio
  loop, with requests written and responses parsed by hand (a few µs each) so that the
  client takes as little of the machine's CPU as possible. Its CPU time is printed.

In one run it prints:

(floor) what the machine sustains for trivial routes: ``GET /health`` (no NGSI-LD machinery)
    and ``GET /ngsi-ld/v1/info/sourceIdentity`` (the NGSI-LD route class, no store);
(a) partial-update throughput: ``PATCH /ngsi-ld/v1/entities/{id}/attrs/speed`` over 1,000
    vehicles;
(b) the same updates through the knowledge facade called directly, from ``--workers``
    processes with ``--clients / --workers`` threads each: the HTTP layer's overhead is
    the ratio (b)/(a);
(c) q+geo query throughput over ``--entities`` vehicles:
    ``GET /entities?type=Vehicle&q=speed>50&georel=near;maxDistance==500&geometry=Point…``
    (about 200 vehicles in the circle, the radius of ``benchmarks/knowledge_query.py``) and
    again with ``maxDistance==2000`` (about 3,300), at random points in the city, with p50/p95
    latency; and (c') the same query through the facade directly, as (b).

Every row also gives the CPU used meanwhile, in cores: by the load generator (client), by
the knowledge process (mostly the outbox relay publishing each change event), and by the
whole machine (every process, PostgreSQL's and other users' included; 2.0 is saturated).

The vehicles are created through the knowledge ingest (observations on the bus), as a
city's devices create them; with ``--database-url`` an already loaded database is reused.
Figures are printed, never asserted (``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

API = "/ngsi-ld/v1"
CENTRE = (-3.7038, 40.4168)  # Madrid
UPDATED_VEHICLES = 1000


def vehicle_id(index: int) -> str:
    return f"urn:ngsi-ld:Vehicle:{index}"


def random_point(rng: random.Random) -> tuple[float, float]:
    return CENTRE[0] + rng.uniform(-0.1, 0.1), CENTRE[1] + rng.uniform(-0.1, 0.1)


def query_parameters(rng: random.Random, max_distance: int) -> dict[str, str]:
    lon, lat = random_point(rng)
    return {
        "type": "Vehicle",
        "q": "speed>50",
        "georel": f"near;maxDistance=={max_distance}",
        "geometry": "Point",
        "coordinates": f"[{lon},{lat}]",
        "limit": "20",
    }


# -- the database and the knowledge process --------------------------------------------------


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    from cityos.embedded import EmbeddedPostgres

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


def vehicle_count(facade: Any) -> int:
    from cityos_knowledge.service import parse_entity_query

    query = parse_entity_query({"type": "Vehicle", "count": "true", "limit": "0"})
    page = facade.query_entities(None, query, expand=expander())
    return int(page.count or 0)


@functools.cache
def expander() -> Callable[[str], str]:
    from cityos_interoperability.layer import build_services
    from cityos_interoperability.settings import InteroperabilitySettings

    terms = build_services(InteroperabilitySettings(), None).resolver.core
    return terms.expand


def load(bus: Any, facade: Any, count: int) -> None:
    """Create the vehicles the way a city does: observations through the knowledge ingest."""
    from cityos_kernel.bus import Record
    from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
    from cityos_kernel.events.topics import OBSERVATIONS

    observed_at = datetime.now(UTC)
    for start in range(vehicle_count(facade), count, 2000):
        records = []
        for index in range(start, min(count, start + 2000)):
            rng = random.Random(index)
            payload = ObservationV1(
                entity_id=vehicle_id(index),
                entity_type="Vehicle",
                attributes=[
                    ObservedAttribute(
                        name="speed", value=rng.uniform(0, 120), observed_at=observed_at
                    ),
                    ObservedAttribute(
                        name="location",
                        kind="GeoProperty",
                        value={"type": "Point", "coordinates": list(random_point(rng))},
                        observed_at=observed_at,
                    ),
                ],
            )
            envelope = OBSERVATIONS.envelope(payload, source="benchmark")
            records.append(
                Record(OBSERVATIONS.name, vehicle_id(index), OBSERVATIONS.encode(envelope))
            )
        bus.publish(records)
    while vehicle_count(facade) < count:
        time.sleep(1)


# -- the API server processes ------------------------------------------------------------------


def serve(database_url: str, port: int, http: str, loop: str) -> None:
    """One API server process (``serve`` subcommand): uvicorn on a shared SO_REUSEPORT port."""
    import uvicorn

    from cityos.app import create_app
    from cityos.bootstrap import build_platform
    from cityos.layers import load_layers
    from cityos_kernel.bus import MemoryBus
    from cityos_kernel.settings import PlatformSettings

    platform = build_platform(
        PlatformSettings(env="development", auth="off", log_level="WARNING"),
        load_layers(("interoperability",)),
        database_url=database_url,
        bus=MemoryBus(),
    )
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it small responses wait for delayed ACKs (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        create_app(platform), log_level="warning", access_log=False, http=http, loop=loop
    )
    uvicorn.Server(config).run(sockets=[sock])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_served(port: int, workers: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                time.sleep(2 + workers)  # every worker binds before the first one answers
                return
        time.sleep(0.5)
    raise SystemExit("the API servers did not start")


@contextlib.contextmanager
def servers(database_url: str, workers: int, http: str, loop: str) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, __file__, "serve", "--database-url", database_url]
    command += ["--port", str(port), "--http", http, "--loop", loop]
    processes = [subprocess.Popen(command) for _ in range(workers)]
    try:
        wait_until_served(port, workers)
        yield port
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


# -- the load generator ------------------------------------------------------------------------


def http_request(method: str, target: str, body: bytes | None = None) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: bench\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def request_maker(scenario: str, max_distance: int) -> Callable[[random.Random], tuple[bytes, int]]:
    """The next request of a scenario and the status it must get."""
    if scenario == "health":
        return lambda rng: (http_request("GET", "/health"), 200)
    if scenario == "identity":
        return lambda rng: (http_request("GET", f"{API}/info/sourceIdentity"), 200)
    if scenario == "patch":

        def patch(rng: random.Random) -> tuple[bytes, int]:
            target = f"{API}/entities/{vehicle_id(rng.randrange(UPDATED_VEHICLES))}/attrs/speed"
            body = json.dumps({"value": round(rng.uniform(0, 120), 2)}).encode()
            return http_request("PATCH", target, body), 204

        return patch
    if scenario == "query":
        return lambda rng: (
            http_request("GET", f"{API}/entities?{urlencode(query_parameters(rng, max_distance))}"),
            200,
        )
    raise SystemExit(f"unknown scenario {scenario}")


async def http_client(
    port: int, make: Callable[[random.Random], tuple[bytes, int]], slot: int, stop: float
) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random(slot)
    latencies: list[float] = []
    try:
        while time.monotonic() < stop:
            request, expected = make(rng)
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"transfer-encoding":
                    raise RuntimeError("chunked responses are not expected here")
            body = await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != expected:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    finally:
        writer.close()
    return latencies


def generate_load(
    port: int, scenario: str, clients: int, seconds: float, max_distance: int
) -> dict[str, Any]:
    """The ``load`` subcommand: ``clients`` connections on one loop for ``seconds``."""
    make = request_maker(scenario, max_distance)

    async def run() -> list[list[float]]:
        stop = time.monotonic() + seconds
        return await asyncio.gather(*(http_client(port, make, i, stop) for i in range(clients)))

    started, cpu = time.monotonic(), time.process_time()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started
    return summary([value for result in results for value in result], elapsed, cpu)


def summary(latencies: list[float], elapsed: float, cpu_started: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "rate": len(ordered) / elapsed,
        "count": len(ordered),
        "p50": ordered[len(ordered) // 2] if ordered else 0.0,
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0,
        "client_cpu": (time.process_time() - cpu_started) / elapsed,
    }


# -- the facade called directly ----------------------------------------------------------------


def call_facade(
    database_url: str, scenario: str, threads: int, seconds: float, max_distance: int
) -> dict[str, Any]:
    """The ``facade`` subcommand: the operation without HTTP, from ``threads`` threads."""
    from cityos_interoperability.layer import build_services
    from cityos_interoperability.ngsild.jsonld.expansion import Expander
    from cityos_interoperability.settings import InteroperabilitySettings
    from cityos_knowledge.service import parse_entity_query

    services = build_services(InteroperabilitySettings(), database_url)
    facade = services.knowledge
    if facade is None:
        raise SystemExit("the knowledge facade is not available in this build")
    terms = services.resolver.core
    speed = terms.expand("speed")

    def patch(rng: random.Random) -> None:
        fragment = Expander(terms, partial=True).attribute(
            {"value": round(rng.uniform(0, 120), 2)}, "speed"
        )
        facade.patch_attribute(None, vehicle_id(rng.randrange(UPDATED_VEHICLES)), speed, fragment)

    def query(rng: random.Random) -> None:
        query = parse_entity_query(query_parameters(rng, max_distance), max_limit=1000)
        facade.query_entities(None, query, expand=terms.expand)

    work = {"patch": patch, "query": query}[scenario]
    for warm in range(20):
        work(random.Random(-warm))
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def worker(slot: int) -> None:
        rng = random.Random(slot)
        while time.monotonic() < stop:
            started = time.perf_counter()
            work(rng)
            latencies[slot].append((time.perf_counter() - started) * 1000)

    started, cpu = time.monotonic(), time.process_time()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    result = summary([v for slot in latencies for v in slot], time.monotonic() - started, cpu)
    facade.close()
    return result


# -- orchestration -----------------------------------------------------------------------------


def busy_jiffies() -> int:
    """CPU time the whole machine spent busy (all processes, /proc/stat), in clock ticks."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def in_processes(commands: list[list[str]]) -> dict[str, Any]:
    """Run subcommands of this script at once; their figures added up (rates) or merged,
    with the CPU the machine and this (knowledge) process used meanwhile, in cores."""
    started, busy, own = time.monotonic(), busy_jiffies(), time.process_time()
    processes = [
        subprocess.Popen([sys.executable, __file__, *command], stdout=subprocess.PIPE)
        for command in commands
    ]
    results = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{commands[0][0]} failed ({process.returncode})")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    elapsed = time.monotonic() - started
    return {
        "machine_cpu": (busy_jiffies() - busy) / os.sysconf("SC_CLK_TCK") / elapsed,
        "knowledge_cpu": (time.process_time() - own) / elapsed,
        "rate": sum(r["rate"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p95": max(r["p95"] for r in results),
        "client_cpu": sum(r["client_cpu"] for r in results),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def line(label: str, figures: dict[str, Any], extra: str = "") -> None:
    print(
        f"{label:58s} {figures['rate']:7.0f}/s  p50 {figures['p50']:6.1f} ms"
        f"  p95 {figures['p95']:6.1f} ms  CPU: client {figures['client_cpu']:.2f},"
        f" knowledge {figures['knowledge_cpu']:.2f}, machine {figures['machine_cpu']:.2f}"
        f"  load {loadavg()}{extra}",
        flush=True,
    )


def main() -> None:
    from cityos.server import server_stack

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command", nargs="?", default="run", choices=("run", "serve", "load", "facade")
    )
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url")
    parser.add_argument("--port", type=int)
    parser.add_argument("--scenario")
    parser.add_argument("--max-distance", type=int, default=500)
    http, loop = server_stack()
    parser.add_argument(
        "--http",
        default=http,
        choices=("h11", "httptools"),
        help=f"uvicorn's HTTP parser (default: what `cityos serve` uses here, {http})",
    )
    parser.add_argument(
        "--loop",
        default=loop,
        choices=("asyncio", "uvloop"),
        help=f"uvicorn's event loop (default: what `cityos serve` uses here, {loop})",
    )
    args = parser.parse_args()

    if args.command == "serve":
        serve(args.database_url, args.port, args.http, args.loop)
        return
    if args.command == "load":
        figures = generate_load(
            args.port, args.scenario, args.clients, args.seconds, args.max_distance
        )
        print(json.dumps(figures))
        return
    if args.command == "facade":
        figures = call_facade(
            args.database_url, args.scenario, args.clients, args.seconds, args.max_distance
        )
        print(json.dumps(figures))
        return

    from cityos.bootstrap import build_platform
    from cityos.layers import load_layers
    from cityos.migrate import upgrade
    from cityos_kernel.bus import MemoryBus
    from cityos_kernel.settings import PlatformSettings
    from cityos_knowledge.service import KnowledgeService

    print(
        f"{os.cpu_count()} CPUs; {args.workers} API server processes (uvicorn, {args.http}, "
        f"{args.loop}), one knowledge "
        f"process (ingest, outbox relay), one load generator ({args.clients} keep-alive "
        f"connections); {args.seconds:.0f} s per row",
        flush=True,
    )
    with database(args.database_url) as url:
        upgrade(url, load_layers(("knowledge", "interoperability")))
        knowledge = build_platform(
            PlatformSettings(env="development", auth="off", log_level="WARNING"),
            load_layers(("knowledge",)),
            database_url=url,
            bus=MemoryBus(),
        )
        knowledge.start()
        facade = KnowledgeService.from_url(url)
        try:
            started = time.monotonic()
            load(knowledge.bus, facade, args.entities)
            print(
                f"{vehicle_count(facade)} vehicles in the store "
                f"(loaded in {time.monotonic() - started:.0f} s)",
                flush=True,
            )
            with servers(url, args.workers, args.http, args.loop) as port:

                def over_http(scenario: str, max_distance: int = 500) -> dict[str, Any]:
                    command = ["load", "--port", str(port), "--scenario", scenario]
                    command += ["--max-distance", str(max_distance)]
                    command += ["--clients", str(args.clients), "--seconds", str(args.seconds)]
                    return in_processes([command])

                def direct(scenario: str, max_distance: int = 500) -> dict[str, Any]:
                    threads = max(1, args.clients // args.workers)
                    command = ["facade", "--database-url", url, "--scenario", scenario]
                    command += ["--max-distance", str(max_distance)]
                    command += ["--clients", str(threads), "--seconds", str(args.seconds)]
                    return in_processes([command] * args.workers)

                line("(floor) GET /health", over_http("health"))
                line("(floor) GET /ngsi-ld/v1/info/sourceIdentity", over_http("identity"))
                patched = over_http("patch")
                line("(a) PATCH /entities/{id}/attrs/speed", patched)
                facade_patched = direct("patch")
                overhead = facade_patched["rate"] / patched["rate"]
                line("(b) the same through the facade directly", facade_patched,
                     f"  HTTP overhead x{overhead:.2f}")  # fmt: skip
                for radius in (500, 2000):
                    queried = over_http("query", radius)
                    line(f"(c) q+geo GET /entities, {radius} m, over {args.entities}", queried)
                    facade_queried = direct("query", radius)
                    overhead = facade_queried["rate"] / queried["rate"]
                    line("(c') the same through the facade directly", facade_queried,
                         f"  HTTP overhead x{overhead:.2f}")  # fmt: skip
        finally:
            facade.close()
            knowledge.stop()


if __name__ == "__main__":
    main()
