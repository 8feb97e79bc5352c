"""Auditing each write with the outcome the client actually got.

``require()`` lets a write through; whether it *succeeded* is only known from the response:
route classes (the NGSI-LD one) turn errors into ProblemDetails responses before a
dependency could see them. :class:`WriteAudit`, a response observer of the runtime's HTTP
middleware (:class:`~cityos_support.monitoring.http.HttpMetricsMiddleware`, which learns
each request's status once for metrics and audit alike), therefore records the write the
dependency left in the request state once the response has started: ``success`` for a
status below 400, ``failure`` otherwise (an unhandled error is a 500).
:class:`WriteAuditMiddleware` is the same observer on its own, for an app without the
runtime's middleware. Without either (a bare app in a test), ``require()`` records the
write itself.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Scope

from cityos_support.monitoring.http import HttpMetricsMiddleware

#: Set in the request state by this observer: "audit writes after the response".
DEFERRED = "cityos_write_audit_deferred"
#: Set by ``require()``: the (principal, permission) of the write to audit.
PENDING = "cityos_write_audit_pending"


class WriteAudit:
    """Records the writes ``require()`` let through, with the status they were answered."""

    def request_started(self, scope: Scope) -> None:
        scope.setdefault("state", {})[DEFERRED] = True

    async def response_answered(self, scope: Scope, status_code: int) -> None:
        pending = scope["state"].pop(PENDING, None)
        if pending is None:
            return
        principal, permission = pending
        request = Request(scope)
        authorizer = getattr(request.app.state, "authorizer", None)
        recorder = getattr(authorizer, "record_write", None)
        if recorder is not None:
            outcome = "success" if status_code < 400 else "failure"
            await recorder(request, principal, permission, outcome=outcome)


class WriteAuditMiddleware(HttpMetricsMiddleware):
    """The HTTP middleware with the write audit: what an app outside the runtime adds."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, observers=(WriteAudit(),))
