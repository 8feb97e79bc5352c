"""Auditing each write with the outcome the client actually got.

``require()`` lets a write through; whether it *succeeded* is only known from the response:
route classes (the NGSI-LD one) turn errors into ProblemDetails responses before a
dependency could see them. This ASGI middleware, added by the runtime, therefore records the
write the dependency left in ``request.state`` once the response has started: ``success``
for a status below 400, ``failure`` otherwise (an unhandled error is a 500). Without the
middleware (a bare app in a test), ``require()`` records the write itself.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Set in the request state by this middleware: "audit writes after the response".
DEFERRED = "cityos_write_audit_deferred"
#: Set by ``require()``: the (principal, permission) of the write to audit.
PENDING = "cityos_write_audit_pending"


class WriteAuditMiddleware:
    """Records the writes ``require()`` let through, with the status they were answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[DEFERRED] = True
        status_code = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            pending = state.pop(PENDING, None)
            if pending is not None:
                principal, permission = pending
                request = Request(scope)
                authorizer = getattr(request.app.state, "authorizer", None)
                recorder = getattr(authorizer, "record_write", None)
                if recorder is not None:
                    outcome = "success" if status_code < 400 else "failure"
                    await recorder(request, principal, permission, outcome=outcome)
