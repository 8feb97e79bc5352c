"""Finding a request's route by its first path segments instead of trying every route.

FastAPI 0.165 keeps each included router as a node and matches a request by asking every
node in order, with the whole match repeated when the chosen node handles the request:
a route of a router included in a router (the NGSI-LD API's resources under
``/ngsi-ld/v1``) is matched three times, and each request tried about 80 route patterns
before its own (~40 % of the CPU of a trivial NGSI-LD request, docs/performance.md).

:class:`RouteIndex` sits where the application's router would (``router.middleware_stack``)
and dispatches a request to the route FastAPI would choose, after trying only the routes
that could match its first three path segments, in FastAPI's order. It hands the chosen
route to FastAPI exactly as FastAPI's own dispatch does (the effective route context in the
scope, then ``APIRoute.handle``), so dependencies, validation, body limits and the route
class run unchanged. Whatever it does not decide itself goes to FastAPI's router as before:
no route matching (404, the trailing-slash redirect), a route matching the path but not the
method (405), a non-FastAPI route that could match (``/docs``, ``/openapi.json``, mounts),
websockets, FastAPI's native telemetry, and routers with form limits (ADR 0051).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import (  # FastAPI's own dispatch state (ADR 0051)
    _FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY,
    _FASTAPI_INCLUDED_ROUTER_KEY,
    _FASTAPI_SCOPE_KEY,
    APIRoute,
    APIRouter,
    _EffectiveRouteContext,
    _IncludedRouter,
)
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

#: How many leading path segments select the candidate routes.
KEY_SEGMENTS = 3
#: Distinct keys remembered; other paths (typos, scans) are matched without memoizing.
MAX_KEYS = 1024


def path_key(path: str) -> tuple[str, ...]:
    """The first :data:`KEY_SEGMENTS` segments of a path (fewer for a shorter path)."""
    return tuple(path.split("/", KEY_SEGMENTS + 1)[1 : KEY_SEGMENTS + 1])


@dataclass(frozen=True)
class _Leaf:
    """One route in FastAPI's matching order."""

    #: The regex FastAPI matches; None for a route this index does not dispatch itself.
    regex: re.Pattern[str] | None
    methods: frozenset[str]
    context: _EffectiveRouteContext | None
    included_router: _IncludedRouter | None
    #: A non-FastAPI route (docs, mounts): when it could match, FastAPI decides.
    barrier: BaseRoute | None
    #: Literal path before the first parameter, split; None: could match any path.
    complete: tuple[str, ...] | None
    partial: str
    exact: bool

    def could_match(self, key: tuple[str, ...]) -> bool:
        """Whether a path whose :func:`path_key` is ``key`` may match this route."""
        if self.complete is None:
            return True
        complete = self.complete
        if self.exact:
            return path_key("/" + "/".join(complete)) == key
        if len(complete) >= len(key):
            # The path has len(key) segments (all of them when fewer than KEY_SEGMENTS),
            # the route at least len(complete) + 1.
            return len(key) == KEY_SEGMENTS and complete[:KEY_SEGMENTS] == key
        return complete == key[: len(complete)] and key[len(complete)].startswith(self.partial)


def _literal(path_format: str) -> tuple[tuple[str, ...], str, bool]:
    """``/a/b/{x}`` → (("a", "b"), "", False); ``/a/b`` → (("a", "b"), "", True)."""
    brace = path_format.find("{")
    if brace < 0:
        return tuple(path_format.split("/")[1:]), "", True
    parts = path_format[:brace].split("/")[1:]
    return tuple(parts[:-1]), parts[-1], False


def _leaves(
    routes: list[BaseRoute] | list[Any], included: _IncludedRouter | None
) -> Iterator[_Leaf]:
    """Every route in FastAPI's matching order (depth first through included routers)."""
    for route in routes:
        if isinstance(route, _IncludedRouter):
            if route.include_context.form_limits:
                yield _barrier(route)
            else:
                yield from _leaves(route.effective_candidates(), route)
        elif (
            isinstance(route, _EffectiveRouteContext)
            and isinstance(route.original_route, APIRoute)
            and route.path_regex is not None
        ):
            complete, partial, exact = _literal(route.path_format)
            yield _Leaf(
                regex=route.path_regex,
                methods=frozenset(route.methods or ()),
                context=route,
                included_router=included,
                barrier=None,
                complete=complete,
                partial=partial,
                exact=exact,
            )
        elif isinstance(route, _EffectiveRouteContext):
            yield _barrier(route.starlette_route or route.original_route)
        else:
            yield _barrier(route)


def _barrier(route: BaseRoute) -> _Leaf:
    if isinstance(route, Route):  # a plain path: only paths with its prefix can match
        complete, partial, exact = _literal(route.path_format)
    else:  # a mount, a host, something else: ask it for every request
        complete, partial, exact = None, "", False
    return _Leaf(
        regex=None,
        methods=frozenset(),
        context=None,
        included_router=None,
        barrier=route,
        complete=complete,
        partial=partial,
        exact=exact,
    )


class RouteIndex:
    """The application router's dispatch, trying only the routes a path's prefix allows."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.fallback: ASGIApp = router.app
        self._built_for: tuple[int, int] | None = None
        self._leaves: list[_Leaf] = []
        self._by_key: dict[tuple[str, ...], tuple[_Leaf, ...]] = {}
        self._by_method: dict[tuple[tuple[str, ...], str], tuple[_Leaf, ...]] = {}

    def refresh(self) -> None:
        """Rebuild the route list if the router's routes changed since it was built."""
        version = (len(self.router.routes), getattr(self.router, "_routes_version", 0))
        if version != self._built_for:
            self._leaves = list(_leaves(self.router.routes, None))
            self._by_key = {}
            self._by_method = {}
            self._built_for = version

    def candidates(self, key: tuple[str, ...]) -> tuple[_Leaf, ...]:
        """The routes that could match a path with this key, in FastAPI's order."""
        found = self._by_key.get(key)
        if found is None:
            found = tuple(leaf for leaf in self._leaves if leaf.could_match(key))
            if len(self._by_key) < MAX_KEYS:
                self._by_key[key] = found
        return found

    def candidates_for(self, key: tuple[str, ...], method: str) -> tuple[_Leaf, ...]:
        """:meth:`candidates` less the routes that do not take ``method``: they cannot be
        selected (a path matched without its method is FastAPI's to answer, with 405)."""
        found = self._by_method.get((key, method))
        if found is None:
            found = tuple(
                leaf
                for leaf in self.candidates(key)
                if leaf.barrier is not None or not leaf.methods or method in leaf.methods
            )
            if len(self._by_method) < MAX_KEYS:
                self._by_method[(key, method)] = found
        return found

    def select(self, scope: Scope) -> _Leaf | None:
        """The route FastAPI would dispatch ``scope`` to, or None to let FastAPI decide."""
        self.refresh()
        path = get_route_path(scope)
        method = scope["method"]
        for leaf in self.candidates_for(path_key(path), method):
            if leaf.barrier is not None:
                if leaf.barrier.matches(scope)[0] != Match.NONE:
                    return None
                continue
            assert leaf.regex is not None
            if leaf.regex.match(path) is not None and (not leaf.methods or method in leaf.methods):
                return leaf
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        leaf = None
        if scope["type"] == "http" and scope.get("fastapi.telemetry") is None:
            leaf = self.select(scope)
        if leaf is None or leaf.context is None:
            await self.fallback(scope, receive, send)
            return
        # What FastAPI's router and included routers do once they chose this route.
        scope.setdefault("router", self.router)
        context = leaf.context
        match, child_scope = context.matches(scope)
        if match != Match.FULL:  # the regex matched above; a convertor refused the value
            await self.fallback(scope, receive, send)
            return
        original = context.original_route
        child_scope["route"] = original
        scope.update(child_scope)
        fastapi_scope = scope.setdefault(_FASTAPI_SCOPE_KEY, {})
        if leaf.included_router is not None:
            fastapi_scope[_FASTAPI_INCLUDED_ROUTER_KEY] = leaf.included_router
        fastapi_scope[_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY] = context
        await original.handle(scope, receive, send)


def index_routes(app: FastAPI) -> RouteIndex | None:
    """Put a :class:`RouteIndex` in front of ``app``'s router (after its routes are in).

    Not when the router has middleware of its own (a router-wide body limit): the index
    would dispatch around it.
    """
    if app.router.middleware_stack != app.router.app:
        return None
    index = RouteIndex(app.router)
    index.refresh()  # FastAPI builds its effective routes now, not in a first request
    app.router.middleware_stack = index
    return index
