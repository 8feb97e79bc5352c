"""NGSI-LD routes solve their parameters and dependencies from a plan (ADR 0056).

The plan must answer every request exactly as FastAPI's own solver does: the same values,
the same dependencies called, the same validation errors (ProblemDetails bodies byte for
byte). The applications here have no database: each request is solved, then the route
answers 503 (no facade) or its own error, the same with and without the plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.layers import load_layers
from cityos_interoperability.ngsild.routing import NgsiLdRoute
from cityos_interoperability.ngsild.tenant import tenant_from_header
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings

LAYERS = ("knowledge", "interoperability")
SAMPLE_ID = "urn:ngsi-ld:Vehicle:1"


def build_app() -> FastAPI:
    settings = PlatformSettings(env="development", auth="off", log_level="WARNING")
    platform = build_platform(settings, load_layers(LAYERS), database_url=None, bus=MemoryBus())
    return create_app(platform, manage_lifecycle=False)


@pytest.fixture(scope="module")
def apps() -> tuple[FastAPI, FastAPI]:
    """(planned, FastAPI's solver) — the same application built twice."""
    planned = build_app()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NgsiLdRoute, "solve_by_plan", False)
        reference = build_app()
    return planned, reference


def ngsild_routes(app: FastAPI) -> list[tuple[NgsiLdRoute, str]]:
    found = []
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if isinstance(route, NgsiLdRoute):
            path = context._route_context.path_format if context._route_context else route.path
            found.append((route, path))
    return found


def query_fields(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.query_params
    for dependency in dependant.dependencies:
        yield from query_fields(dependency)


def requests(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Requests to every NGSI-LD route: plain, with each query parameter well and badly
    formed, with a tenant, with a malformed tenant, and with a missing path value."""
    for route, path_format in ngsild_routes(app):
        path = path_format
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", SAMPLE_ID)
        for method in sorted(route.methods or ()):
            body = {"content": b"{}"} if method in {"POST", "PATCH", "PUT"} else {}
            yield method, path, body
            yield method, path, {**body, "headers": {"NGSILD-Tenant": "city"}}
            yield method, path, {**body, "headers": {"NGSILD-Tenant": "no such tenant!"}}
            for field in query_fields(route.dependant):
                for value in ("x", "true", "7", ""):
                    yield method, path, {**body, "params": {field.alias: value}}
            yield method, path, {**body, "params": {"type": ["A", "B"]}}


def test_every_ngsild_route_is_solved_by_a_plan(apps: tuple[FastAPI, FastAPI]) -> None:
    planned, reference = apps
    routes = ngsild_routes(planned)
    assert len(routes) > 40
    assert [path for route, path in routes if not route.planned] == []
    assert not any(route.planned for route, _ in ngsild_routes(reference))


def test_requests_are_answered_as_fastapis_solver_answers_them(
    apps: tuple[FastAPI, FastAPI],
) -> None:
    planned, reference = apps
    checked = 0
    with TestClient(planned) as got_client, TestClient(reference) as want_client:
        for method, path, options in requests(planned):
            got = got_client.request(method, path, follow_redirects=False, **options)
            want = want_client.request(method, path, follow_redirects=False, **options)
            case = f"{method} {path} {options}"
            if path.endswith("/info/sourceIdentity") and got.status_code == 200:
                # Its uptime and time differ from one call to the next.
                assert (got.status_code, sorted(got.json())) == (200, sorted(want.json()))
            else:
                assert (got.status_code, got.content) == (want.status_code, want.content), case
            drop = {"date", "content-length"}
            assert {k: v for k, v in got.headers.items() if k not in drop} == {
                k: v for k, v in want.headers.items() if k not in drop
            }, case
            checked += 1
    assert checked > 500


def test_dependency_overrides_are_honoured(apps: tuple[FastAPI, FastAPI]) -> None:
    planned, _ = apps

    async def always_city() -> str:
        return "city"

    planned.dependency_overrides[tenant_from_header] = always_city
    try:
        with TestClient(planned) as client:
            answer = client.get(
                "/ngsi-ld/v1/info/sourceIdentity", headers={"NGSILD-Tenant": "no such tenant!"}
            )
    finally:
        planned.dependency_overrides.clear()
    assert answer.status_code == 200
