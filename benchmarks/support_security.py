"""Support layer costs: token validation, authorization per request, audit appends.

    PYTHONPATH=. uv run python benchmarks/support_security.py [--tokens 2000] [--events 5000]

(from the repository root: it borrows the tests' loopback issuer, tests/fixtures/support.py)

(a) ``TokenValidator.validate`` on distinct Keycloak-shaped RS256 tokens, keys cached (the loopback
issuer of the tests serves discovery and JWKS once); (b) a protected route answered through
the assembled app (TestClient, no network) with ``CITYOS_AUTH=off`` and ``keycloak``, to show
what validation adds per request; (c) audit events appended to the hash chain in an
embedded PostgreSQL, in batches of 500 (what the consumer does), then verified; (d) the
knowledge facade's Query Entities and Retrieve Entity on 3,000 entities with no data scope,
an unrestricted one (what development mode and administrators pass: must cost the same),
a tenant-only one (a typical non-administrator), a type-restricted one and one that also
hides attributes, interleaved in rounds, with each one's rate as a ratio of "no scope";
(e) what the security seam adds to one request, straight into an ASGI app (no HTTP client),
``CITYOS_AUTH=keycloak`` with a cached token: a route with ``require()`` alone, the same
route also taking the caller's ``data_scope()`` (what the NGSI-LD routes do), and a write
with and without the write-audit middleware.
Figures are printed, never asserted (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.embedded import EmbeddedPostgres
from cityos.migrate import upgrade
from cityos_kernel.bus import MemoryBus
from cityos_kernel.database import sqlalchemy_url
from cityos_kernel.events.payloads import AuditEventV1
from cityos_kernel.events.topics import AUDIT
from cityos_kernel.settings import PlatformSettings
from cityos_knowledge.layer import KnowledgeLayer
from cityos_knowledge.service import DataScope, KnowledgeService, parse_entity_query
from cityos_support.audit.signing import CheckpointSigner
from cityos_support.audit.store import AuditStore
from cityos_support.layer import SupportLayer
from cityos_support.security import data_scope, require
from cityos_support.security.modes import authorizer_for
from cityos_support.security.policy import DataScope as SupportScope
from cityos_support.security.tokens import JwksCache, TokenValidator
from cityos_support.security.write_audit import WriteAuditMiddleware
from tests.fixtures.support import AUDIENCE, LoopbackIssuer


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({seconds * 1e6 / count:,.0f} µs each)"


def bench_tokens(issuer: LoopbackIssuer, count: int) -> None:
    validator = TokenValidator(JwksCache(issuer.url), audience=AUDIENCE)
    tokens = [issuer.token(roles=("operator",)) for _ in range(count)]
    validator.validate(tokens[0])  # fetch the keys once
    started = time.perf_counter()
    for token in tokens:
        validator.validate(token)
    elapsed = time.perf_counter() - started
    print(f"token validation, each token seen once (RS256, keys cached): {rate(count, elapsed)}")


def bench_requests(issuer: LoopbackIssuer, count: int) -> None:
    token = issuer.token(roles=("platform-admin",))
    for mode, extra in (("off", {}), ("keycloak", {"auth_issuer": issuer.url})):
        settings = PlatformSettings(env="development", auth=mode, **extra)  # type: ignore[arg-type]
        platform = build_platform(settings, [SupportLayer()], bus=MemoryBus())
        with TestClient(create_app(platform, manage_lifecycle=False)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            client.get("/support/monitoring/warnings", headers=headers)
            started = time.perf_counter()
            for _ in range(count):
                client.get("/support/monitoring/warnings", headers=headers)
            print(
                f"protected GET, CITYOS_AUTH={mode}: {rate(count, time.perf_counter() - started)}"
            )


def bench_audit(count: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", durable=False)
    try:
        server.start()
        server.create_database("bench")
        url = server.url("bench")
        upgrade(url, [SupportLayer()])
        engine = create_engine(sqlalchemy_url(url))
        store = AuditStore(engine, CheckpointSigner(bytes(32)), checkpoint_every=1000)
        events = [
            AUDIT.envelope(
                AuditEventV1(
                    subject=f"user-{number % 50}",
                    action="entities:write",
                    target=f"urn:ngsi-ld:Streetlight:{uuid.uuid4().hex[:8]}",
                    outcome="success",
                    details={"attributes": ["powerState"]},
                ),
                source="bench",
                tenant=f"urn:ngsi-ld:tenant:{number % 4}",
            )
            for number in range(count)
        ]
        started = time.perf_counter()
        for start in range(0, count, 500):
            store.append(events[start : start + 500])
        elapsed = time.perf_counter() - started
        print(f"audit append (4 tenants, batches of 500): {rate(count, elapsed)}")
        started = time.perf_counter()
        report = store.verify()
        seconds = time.perf_counter() - started
        checked = f"{report.records} records, ok={report.ok}"
        print(f"audit verify ({checked}): {rate(report.records, seconds)}")
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"

SCOPES: dict[str, DataScope | None] = {
    "no scope": None,
    "unrestricted": DataScope(tenants=None, readable_types=None, writable_types=None),
    "tenant only": DataScope(
        tenants=frozenset({"city"}), readable_types=None, writable_types=frozenset()
    ),
    "two readable types": DataScope(
        tenants=frozenset({"city"}),
        readable_types=frozenset({"ParkingSpot", "Streetlight"}),
        writable_types=frozenset(),
    ),
    "types + hidden attributes": DataScope(
        tenants=frozenset({"city"}),
        readable_types=frozenset({"ParkingSpot", "Streetlight"}),
        writable_types=frozenset(),
        attributes={"ParkingSpot": frozenset({"status"})},
    ),
}


def bench_data_scope(count: int, rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", durable=False)
    try:
        server.start()
        server.create_database("scope")
        url = server.url("scope")
        upgrade(url, [KnowledgeLayer()])
        service = KnowledgeService.from_url(url)
        kinds = ("ParkingSpot", "Streetlight", "WaterMeter")
        entities = [
            {
                "id": f"urn:ngsi-ld:{kinds[n % 3]}:{n}",
                "type": VOCAB + kinds[n % 3],
                VOCAB + "status": {"type": "Property", "value": "free" if n % 2 else "taken"},
                VOCAB + "owner": {"type": "Property", "value": f"owner-{n % 40}"},
                VOCAB + "level": {"type": "Property", "value": n % 100},
            }
            for n in range(count)
        ]
        service.batch_create("city", entities)
        query = parse_entity_query({"type": "ParkingSpot", "q": "level>10", "limit": "20"})

        def expand(term: str) -> str:
            return VOCAB + term

        timings: dict[str, list[float]] = {name: [] for name in SCOPES}
        retrievals: dict[str, list[float]] = {name: [] for name in SCOPES}
        names = list(SCOPES)
        for number in range(rounds):
            # A rotating order, so that no scope always runs on the warmest caches.
            for name in names[number % len(names) :] + names[: number % len(names)]:
                scope = SCOPES[name]
                started = time.perf_counter()
                for _ in range(50):
                    service.query_entities("city", query, expand=expand, scope=scope)
                timings[name].append(time.perf_counter() - started)
                started = time.perf_counter()
                for _ in range(50):
                    service.retrieve_entity("city", "urn:ngsi-ld:ParkingSpot:0", scope=scope)
                retrievals[name].append(time.perf_counter() - started)
        baseline = sum(timings["no scope"])
        retrieve_baseline = sum(retrievals["no scope"])
        for name in SCOPES:
            spent, fetched = sum(timings[name]), sum(retrievals[name])
            calls = 50 * rounds
            print(
                f"data scope '{name}': query {calls / spent:,.0f}/s "
                f"({baseline / spent:.0%} of no scope), "
                f"retrieve {calls / fetched:,.0f}/s ({retrieve_baseline / fetched:.0%})"
            )
        service.close()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def seam_app(issuer: LoopbackIssuer, *, audit_middleware: bool) -> FastAPI:
    settings = PlatformSettings(env="development", auth="keycloak", auth_issuer=issuer.url)
    app = FastAPI()
    app.state.authorizer = authorizer_for(settings, bus=MemoryBus())
    if audit_middleware:
        app.add_middleware(WriteAuditMiddleware)

    @app.get("/plain", dependencies=[Depends(require("entities:read"))])
    async def plain() -> dict[str, str]:
        return {}

    @app.get("/scoped", dependencies=[Depends(require("entities:read"))])
    async def scoped(
        scope: SupportScope = Depends(data_scope("entities:read")),  # noqa: B008
    ) -> dict[str, str]:
        return {}

    @app.post("/write", dependencies=[Depends(require("entities:write"))])
    async def write() -> dict[str, str]:
        return {}

    return app


async def asgi_call(app: Any, method: str, path: str, token: str) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("bench", 80), "state": {},
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()),
                    (b"content-length", b"0")],
    }  # fmt: skip
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))

    await app(scope, receive, send)
    return status[0]


def bench_seam(issuer: LoopbackIssuer, count: int, rounds: int) -> None:
    token = issuer.token(roles=("app",), tenants=("*",))
    bare, audited = (seam_app(issuer, audit_middleware=flag) for flag in (False, True))
    cases = {
        "GET, require()": (bare, "GET", "/plain"),
        "GET, require() + data_scope()": (bare, "GET", "/scoped"),
        "POST, audited by require()": (bare, "POST", "/write"),
        "POST, audited by the middleware": (audited, "POST", "/write"),
    }
    spent = {name: 0.0 for name in cases}
    loop = asyncio.new_event_loop()

    async def repeat(app: Any, method: str, path: str, times: int) -> None:
        for _ in range(times):
            status = await asgi_call(app, method, path, token)
            if status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {status}")

    for app, method, path in cases.values():
        loop.run_until_complete(repeat(app, method, path, 20))  # warm-up, token cached
    names = list(cases)
    for number in range(rounds):
        for name in names[number % len(names) :] + names[: number % len(names)]:
            app, method, path = cases[name]
            started = time.perf_counter()
            loop.run_until_complete(repeat(app, method, path, count))
            spent[name] += time.perf_counter() - started
    loop.close()
    for name in names:
        each = spent[name] / (count * rounds) * 1e6
        print(f"security seam, {name}: {each:,.0f} µs per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--scope-entities", type=int, default=3000)
    parser.add_argument("--scope-rounds", type=int, default=10)
    parser.add_argument(
        "--only-scope", action="store_true", help="run only (d), the data-scope measurement"
    )
    parser.add_argument(
        "--only-seam", action="store_true", help="run only (e), the per-request seam costs"
    )
    args = parser.parse_args()
    if args.only_scope:
        bench_data_scope(args.scope_entities, args.scope_rounds)
        return
    issuer = LoopbackIssuer()
    issuer.start()
    try:
        if args.only_seam:
            bench_seam(issuer, 500, 10)
            return
        bench_tokens(issuer, args.tokens)
        bench_requests(issuer, args.requests)
        bench_seam(issuer, 500, 10)
    finally:
        issuer.stop()
    bench_audit(args.events)
    bench_data_scope(args.scope_entities, args.scope_rounds)


if __name__ == "__main__":
    main()
