"""The route index dispatches every request where FastAPI's own router would (ADR 0051)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, _EffectiveRouteContext, _IncludedRouter, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Match

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.layers import load_layers
from cityos.route_index import RouteIndex
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings

LAYERS = ("support", "knowledge", "interoperability", "acquisition")
_PARAMETER = re.compile(r"{([^}:]+)(?::([^}]+))?}")
_SAMPLES = {
    "int": "7",
    "float": "1.5",
    "path": "a/b",
    "uuid": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    settings = PlatformSettings(env="development", auth="off", log_level="WARNING")
    platform = build_platform(settings, load_layers(LAYERS), database_url=None, bus=MemoryBus())
    return create_app(platform, manage_lifecycle=False)


def scope_for(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def sample_path(path_format: str, value: str) -> str:
    return _PARAMETER.sub(lambda m: _SAMPLES.get(m.group(2) or "", value), path_format)


def fastapi_choice(routes: list[BaseRoute], scope: dict[str, Any]) -> object | None:
    """The route FastAPI's router dispatches to: the first full match, depth first."""
    for route in routes:
        match, _ = route.matches(dict(scope))
        if match != Match.FULL:
            continue
        while isinstance(route, _IncludedRouter):
            _, _, chosen, context = route._match(dict(scope))
            if isinstance(chosen, _IncludedRouter):
                route = chosen
                continue
            return context
        return route
    return None


def requests(app: FastAPI) -> Iterator[tuple[str, str]]:
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        path_format = context._route_context.path_format if context._route_context else route.path
        for method in sorted(route.methods):
            for value in ("x", "urn:ngsi-ld:Vehicle:1", "entities"):
                yield method, sample_path(path_format, value)


def test_the_index_chooses_fastapis_route_for_a_request_to_every_route(app: FastAPI) -> None:
    index = RouteIndex(app.router)
    checked = 0
    for method, path in requests(app):
        scope = scope_for(method, path)
        expected = fastapi_choice(app.router.routes, scope)
        leaf = index.select(dict(scope))
        chosen = leaf.context if leaf is not None else None
        if isinstance(expected, _EffectiveRouteContext):
            assert chosen is expected, f"{method} {path}"
        else:  # not an indexed route (docs) or none: FastAPI decides
            assert chosen is None, f"{method} {path}"
        checked += 1
    assert checked > 200  # every layer's routes, three sample values each


def test_the_index_leaves_what_it_does_not_decide_to_fastapi(app: FastAPI) -> None:
    index = RouteIndex(app.router)
    for method, path in [
        ("GET", "/no/such/route"),  # 404
        ("DELETE", "/health"),  # 405
        ("GET", "/openapi.json"),  # a Starlette route
        ("GET", "/ngsi-ld/v1/entities/"),  # the trailing-slash redirect
    ]:
        assert index.select(scope_for(method, path)) is None, f"{method} {path}"


def test_requests_are_answered_as_without_the_index(app: FastAPI) -> None:
    plain = create_app(
        build_platform(
            PlatformSettings(env="development", auth="off", log_level="WARNING"),
            load_layers(LAYERS),
            database_url=None,
            bus=MemoryBus(),
        ),
        manage_lifecycle=False,
    )
    plain.router.middleware_stack = plain.router.app  # FastAPI's own dispatch
    assert isinstance(app.router.middleware_stack, RouteIndex)
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/health", {}),
        ("GET", "/no/such/route", {}),
        ("DELETE", "/health", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/ngsi-ld/v1/info/sourceIdentity?bogus=1", {}),
        ("GET", "/ngsi-ld/v1/jsonldContexts", {}),
        ("GET", "/ngsi-ld/v1/types", {"headers": {"Accept": "text/html"}}),
        ("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:1", {}),
        ("PUT", "/ngsi-ld/v1/info/sourceIdentity", {}),
        ("PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:V:1/attrs/speed", {"content": b"{"}),
        (
            "PATCH",
            "/ngsi-ld/v1/entities/urn:ngsi-ld:V:1/attrs/speed",
            {"json": {"value": 1}, "headers": {"Content-Type": "text/plain"}},
        ),
        ("GET", "/ngsi-ld/v1/entities/", {}),
    ]
    with TestClient(app) as indexed, TestClient(plain) as reference:
        for method, path, options in cases:
            got = indexed.request(method, path, follow_redirects=False, **options)
            want = reference.request(method, path, follow_redirects=False, **options)
            assert (got.status_code, got.content) == (want.status_code, want.content), path
            drop = {"date", "content-length"}
            assert {k: v for k, v in got.headers.items() if k not in drop} == {
                k: v for k, v in want.headers.items() if k not in drop
            }, path
