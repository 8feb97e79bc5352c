"""``require()`` audits writes itself in an app without the runtime's write-audit middleware.

The runtime's middleware records each write with the status it was answered; a bare app (a
layer's router mounted on its own) has no such middleware, and ``require()`` must then
record the write once the route has finished: ``success``, or ``failure`` when it raised.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from cityos_support.security.dependencies import Principal, require
from cityos_support.security.write_audit import WriteAuditMiddleware


class RecordingAuthorizer:
    """Lets everything through and records the writes it is told about."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []

    async def authorize(self, request: Request, permission: str) -> Principal:
        return Principal(subject="tester")

    async def record_write(
        self, request: Request, principal: Principal, permission: str, *, outcome: str
    ) -> None:
        self.records.append((f"{request.method} {request.url.path}", permission, outcome))


def app_with(authorizer: RecordingAuthorizer, *, middleware: bool) -> FastAPI:
    router = APIRouter(dependencies=[Depends(require("things:write"))])

    @router.post("/things")
    async def create() -> dict[str, str]:
        return {"created": "yes"}

    @router.delete("/things")
    async def delete() -> None:
        raise HTTPException(status_code=409, detail="in use")

    @router.get("/things")
    async def read() -> list[str]:
        return []

    app = FastAPI()
    app.include_router(router)
    app.state.authorizer = authorizer
    if middleware:
        app.add_middleware(WriteAuditMiddleware)
    return app


def exercise(app: FastAPI) -> None:
    with TestClient(app) as client:
        assert client.post("/things").status_code == 200
        assert client.delete("/things").status_code == 409
        assert client.get("/things").status_code == 200


def test_a_bare_app_audits_each_write_once_its_route_finished() -> None:
    authorizer = RecordingAuthorizer()
    exercise(app_with(authorizer, middleware=False))
    assert authorizer.records == [
        ("POST /things", "things:write", "success"),
        ("DELETE /things", "things:write", "failure"),
    ]  # reads are not audited


def test_with_the_middleware_each_write_is_audited_once_with_its_answer() -> None:
    authorizer = RecordingAuthorizer()
    exercise(app_with(authorizer, middleware=True))
    assert authorizer.records == [
        ("POST /things", "things:write", "success"),
        ("DELETE /things", "things:write", "failure"),
    ]
