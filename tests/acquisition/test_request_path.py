"""The /iot routes run none of the acquisition layer's dependencies in FastAPI's thread pool.

``scope_from_headers`` (on every provisioning route) only reads headers; as a plain
``def`` FastAPI would run it in its thread pool, a thread hop per request. The routes
themselves stay ``def``: they read and write the registry (blocking I/O).
"""

from __future__ import annotations

import inspect

import fastapi.routing
from fastapi.routing import APIRoute

from tests.fixtures.acquisition import make_acquisition_app


def acquisition_dependencies_in_thread_pool(route: APIRoute) -> list[str]:
    found: list[str] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        call = dependant.call
        if (
            call is not None
            and getattr(call, "__module__", "").startswith("cityos_acquisition")
            and not inspect.iscoroutinefunction(call)
        ):
            found.append(call.__qualname__)
        stack.extend(dependant.dependencies)
    return found


def test_no_iot_route_runs_an_acquisition_dependency_in_the_thread_pool() -> None:
    app = make_acquisition_app().client.app
    contexts = fastapi.routing.iter_route_contexts(app.routes)  # type: ignore[attr-defined]
    routes = [
        route
        for route in (context.original_route for context in contexts)
        if isinstance(route, APIRoute) and route.path.startswith("/iot")
    ]
    assert any(route.path == "/iot/devices/{device_id}" for route in routes)
    offending = {
        f"{sorted(route.methods or ())} {route.path}": found
        for route in routes
        if (found := acquisition_dependencies_in_thread_pool(route))
    }
    assert not offending, f"plain def dependencies (run in the thread pool): {offending}"
