"""The HTTP middleware of a cityos process: metrics per route, and the answered status.

One plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which copies every
response body through an extra task and costs measurable throughput) wraps ``send`` once
per request to learn the status the client got, and gives it to every consumer of that
status: the Prometheus metrics below, and the :class:`ResponseObserver` s the runtime adds
(the write audit, :mod:`cityos_support.security.write_audit`). Each middleware layer costs
a wrapped ``send`` and a few frames per request, so consumers share this one.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Protocol

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "cityos_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "cityos_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class ResponseObserver(Protocol):
    """Something that must know the status each HTTP request was answered with."""

    def request_started(self, scope: Scope) -> None:
        """Before the application sees the request (may leave marks in ``scope``)."""

    async def response_answered(self, scope: Scope, status_code: int) -> None:
        """After the application returned; 500 when it failed before answering."""


def _route_template(scope: Scope) -> str:
    # Label by template (/entities/{id}), never by raw path: raw paths explode cardinality.
    # FastAPI puts the matched route in the scope; routers carry their full prefix.
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


@functools.lru_cache(maxsize=4096)
def _series(method: str, route: str, status_code: int) -> tuple[Histogram, Counter]:
    # prometheus_client's labels() takes a lock and builds a key on every call; the label
    # sets are few (route templates, methods, statuses), so remember their series.
    return LATENCY.labels(method, route), REQUESTS.labels(method, route, str(status_code))


class HttpMetricsMiddleware:
    """Counts requests and observes their latency; tells ``observers`` the status answered."""

    def __init__(self, app: ASGIApp, *, observers: Sequence[ResponseObserver] = ()) -> None:
        self.app = app
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        for observer in self.observers:
            observer.request_started(scope)

        async def send_with_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            try:
                for observer in self.observers:
                    await observer.response_answered(scope, status_code)
            finally:
                latency, requests = _series(
                    str(scope["method"]), _route_template(scope), status_code
                )
                latency.observe(time.perf_counter() - started)
                requests.inc()
