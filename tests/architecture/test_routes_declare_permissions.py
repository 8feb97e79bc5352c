"""Every HTTP route of the assembled platform declares the permission it needs."""

from __future__ import annotations

import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.layers import load_layers
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from cityos_support.security import required_permission

# FastAPI's own documentation routes are not ours to protect here.
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def route_permissions(route: APIRoute) -> list[str]:
    found: list[str] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        permission = required_permission(dependant.call)
        if permission:
            found.append(permission)
        stack.extend(dependant.dependencies)
    return found


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute of an app, including those of included routers (any FastAPI version)."""
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is None:  # FastAPI before lazily included routers
        candidates: list[object] = list(app.routes)
    else:
        candidates = [context.original_route for context in iter_route_contexts(app.routes)]
    return [route for route in candidates if isinstance(route, APIRoute)]


def test_every_route_declares_a_permission() -> None:
    platform = build_platform(
        PlatformSettings(env="development", auth="off"), load_layers(), bus=MemoryBus()
    )
    app = create_app(platform, manage_lifecycle=False)
    routes = [r for r in api_routes(app) if r.path not in FRAMEWORK_ROUTES]
    assert {r.path for r in routes} >= {"/health", "/ready", "/metrics"}
    assert routes, "the assembled app has no routes at all"
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if not route_permissions(r)]
    assert not missing, f"routes without require()/public(): {missing}"


def test_the_check_finds_an_undeclared_route() -> None:
    """The walk above must be able to fail: an undeclared route is reported."""
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/leaky")
    async def leaky() -> dict[str, str]:
        return {}

    (route,) = [r for r in router.routes if isinstance(r, APIRoute)]
    assert route_permissions(route) == []
