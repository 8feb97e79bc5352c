"""Server-side cost of one request through the assembled app, without any HTTP client.

    uv run python benchmarks/interoperability_request_path.py [--requests 500]

Starts an embedded PostgreSQL+PostGIS, applies the migrations, assembles the app
(support, knowledge, interoperability; ``CITYOS_AUTH=off``) and calls it as an ASGI
application from one event loop, so the figures hold only the server's work: middleware,
routing, the security seam, the NGSI-LD route class, the handler and, for the entity
routes, the knowledge facade. It measures a public route, a ``require()`` route, a
trivial NGSI-LD route, a GET and a partial update of one entity, then the same partial
update through the facade directly with the time and number of its SQL statements.

(``TestClient`` is no tool for this: its thread portal caps even a bare FastAPI app at
about 500 requests/s on this machine.) Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.embedded import EmbeddedPostgres
from cityos.layers import load_layers
from cityos.migrate import upgrade
from cityos_interoperability.layer import build_services
from cityos_interoperability.settings import InteroperabilitySettings
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings

LAYERS = ("support", "knowledge", "interoperability")
API = "/ngsi-ld/v1"
ENTITY = "urn:ngsi-ld:Vehicle:1"


async def call(app: Any, method: str, path: str, body: Any = None) -> int:
    """One request straight into the ASGI app; returns the status code."""
    raw = orjson.dumps(body) if body is not None else b""
    headers = [(b"host", b"bench")]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("bench", 80), "state": {},
    }  # fmt: skip
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))

    await app(scope, receive, send)
    return status[0]


def measure(
    loop: asyncio.AbstractEventLoop, name: str, request: Callable[[], Awaitable[int]], count: int
) -> None:
    async def repeat(times: int) -> None:
        for _ in range(times):
            status = await request()
            if status >= 300:
                raise RuntimeError(f"{name}: HTTP {status}")

    loop.run_until_complete(repeat(20))  # warm-up
    started = time.perf_counter()
    loop.run_until_complete(repeat(count))
    elapsed = time.perf_counter() - started
    print(f"{name:48s} {count / elapsed:7.0f}/s  {1e3 * elapsed / count:6.2f} ms")


def facade_statements(url: str, count: int) -> None:
    services = build_services(InteroperabilitySettings(), url)
    facade = services.knowledge
    if facade is None:
        raise SystemExit("the knowledge facade is not available in this build")
    name = services.resolver.core.expand("speed")
    facade.patch_attribute(None, ENTITY, name, {"value": 0.0})
    statements: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    started_at: list[float] = [0.0]

    def before(*_: Any) -> None:
        started_at[0] = time.perf_counter()

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        entry = statements[" ".join(statement.split())[:90]]
        entry[0] += 1
        entry[1] += time.perf_counter() - started_at[0]

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    started = time.perf_counter()
    for index in range(count):
        facade.patch_attribute(None, ENTITY, name, {"value": float(index)})
    elapsed = time.perf_counter() - started
    sql = sum(seconds for _, seconds in statements.values())
    print(
        f"{'facade patch_attribute, 1 thread':48s} {count / elapsed:7.0f}/s  "
        f"{1e3 * elapsed / count:6.2f} ms, of which SQL statements {1e3 * sql / count:.2f} ms "
        f"({sum(n for n, _ in statements.values()) / count:.0f} statements + commit)"
    )
    for text, (calls, seconds) in sorted(statements.items(), key=lambda kv: -kv[1][1]):
        print(f"    {calls / count:4.1f}x {1e3 * seconds / count:6.3f} ms  {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-"))
    base.chmod(0o755)  # the postgres user must reach the data directory
    server = EmbeddedPostgres(base / "data", durable=False)
    server.start()
    try:
        server.create_database("bench")
        url = server.url("bench")
        upgrade(url, load_layers(LAYERS))
        settings = PlatformSettings(env="development", auth="off", log_level="WARNING")
        platform = build_platform(settings, load_layers(LAYERS), database_url=url, bus=MemoryBus())
        app = create_app(platform, manage_lifecycle=False)
        loop = asyncio.new_event_loop()
        vehicle = {"id": ENTITY, "type": "Vehicle", "speed": {"type": "Property", "value": 1.0}}
        if loop.run_until_complete(call(app, "POST", f"{API}/entities", vehicle)) != 201:
            raise SystemExit("cannot create the vehicle")
        cases: dict[str, Callable[[], Awaitable[int]]] = {
            "public GET /health": lambda: call(app, "GET", "/health"),
            "require() GET /support/monitoring/warnings": lambda: call(
                app, "GET", "/support/monitoring/warnings"
            ),
            "NGSI-LD GET /info/sourceIdentity": lambda: call(
                app, "GET", f"{API}/info/sourceIdentity"
            ),
            "NGSI-LD GET /entities/{id}": lambda: call(app, "GET", f"{API}/entities/{ENTITY}"),
            "NGSI-LD PATCH /entities/{id}/attrs/speed": lambda: call(
                app, "PATCH", f"{API}/entities/{ENTITY}/attrs/speed", {"value": 2.0}
            ),
        }
        for name, request in cases.items():
            measure(loop, name, request, args.requests)
        facade_statements(url, args.requests)
        loop.close()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
