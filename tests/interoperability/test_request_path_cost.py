"""The NGSI-LD request path stays on the event loop unless a route really does I/O.

FastAPI runs a plain ``def`` dependency in its thread pool: a thread hop per request.
When ``tenant_from_header`` (on every NGSI-LD route) was one, it cost about 0.3 ms of
a 0.4 ms trivial request and most of a cached entity read (docs/performance.md).
"""

from __future__ import annotations

import inspect

import fastapi.routing
from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.layers import load_layers
from cityos_interoperability.ngsild.routing import NgsiLdRoute
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings


def thread_pool_dependencies(route: APIRoute) -> list[str]:
    """The dependencies of ``route`` that FastAPI would run in its thread pool."""
    found: list[str] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        call = dependant.call
        if call is not None and not (
            inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
        ):
            found.append(getattr(call, "__qualname__", repr(call)))
        stack.extend(dependant.dependencies)
    return found


def ngsild_routes() -> list[APIRoute]:
    platform = build_platform(
        PlatformSettings(env="development", auth="off"),
        load_layers(("knowledge", "interoperability")),
        bus=MemoryBus(),
    )
    app = create_app(platform, manage_lifecycle=False)
    # FastAPI 0.165 includes routers lazily: walk the route contexts, not app.routes.
    contexts = fastapi.routing.iter_route_contexts(app.routes)
    candidates = [context.original_route for context in contexts]
    return [route for route in candidates if isinstance(route, NgsiLdRoute)]


def test_no_ngsild_route_depends_on_a_thread_pool_dependency() -> None:
    routes = ngsild_routes()
    assert any(route.path.endswith("/entities/{entityId}") for route in routes)
    offending = {
        f"{sorted(route.methods or ())} {route.path}": thread_pool_dependencies(route)
        for route in routes
        if thread_pool_dependencies(route)
    }
    assert not offending, f"plain def dependencies (run in the thread pool): {offending}"


def test_the_check_finds_a_plain_def_dependency() -> None:
    def header_only() -> str:
        return "x"

    router = APIRouter(route_class=NgsiLdRoute)

    @router.get("/probe", dependencies=[Depends(header_only)])
    async def probe() -> dict[str, str]:
        return {}

    (route,) = [r for r in router.routes if isinstance(r, APIRoute)]
    assert thread_pool_dependencies(route) == [
        "test_the_check_finds_a_plain_def_dependency.<locals>.header_only"
    ]
