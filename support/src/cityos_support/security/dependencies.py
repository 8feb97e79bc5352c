"""Route-level permissions: every route declares what it needs with one dependency.

``Depends(require("entities:write"))`` asks the application's :class:`Authorizer` (put on
``app.state.authorizer`` by the runtime) whether the request may proceed. Routes that are
deliberately open (liveness, readiness, metrics, public open data) say so with
``Depends(public())``. A route with neither is a defect, and an architecture test walks
the assembled application to find one.

The authorizer is chosen from ``CITYOS_AUTH`` (:mod:`.modes`): ``off`` allows everything
(development only); ``keycloak`` validates bearer tokens and evaluates the policies
(:mod:`.authorizer`). A missing authorizer refuses: the seam fails closed.

A route that needs to know who calls, or what data they may see, takes the principal the
dependency returns: ``principal: Annotated[Principal, Depends(require("entities:read"))]``,
then ``principal.scope`` (a :class:`~cityos_support.security.policy.DataScope`) for the
SQL filters and ``principal.tenant`` for the tenant the request addressed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from fastapi import Depends, HTTPException, Request, status

from cityos_kernel.events.envelope import DEFAULT_TENANT
from cityos_support.security.policy import DataScope, Grants
from cityos_support.security.write_audit import DEFERRED, PENDING

#: The permission name of deliberately public routes.
PUBLIC = "public"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, a machine client, or the development stand-in."""

    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)
    tenants: frozenset[str] | None = None  # None: every tenant
    client: str | None = None
    #: The tenant the request addressed (``NGSILD-Tenant``; the default tenant when absent).
    tenant: str = DEFAULT_TENANT
    #: What the policies grant this principal; None means everything (development mode).
    grants: Grants | None = None

    @property
    def scope(self) -> DataScope:
        """Data-access level: the tenants, entity types and attributes this caller may see."""
        if self.grants is None:
            return DataScope(tenants=None, readable_types=None, writable_types=None)
        return self.grants.scope


#: The header that names the tenant of a request (ETSI NGSI-LD).
TENANT_HEADER = "NGSILD-Tenant"

ANONYMOUS = Principal(
    subject="anonymous",
    grants=Grants(scope=DataScope(tenants=None, readable_types=frozenset())),
)
DEVELOPER = Principal(subject="development", roles=frozenset({"platform-admin"}))


def requested_tenant(request: Request) -> str:
    """The tenant a request addresses: its ``NGSILD-Tenant`` header, or the default tenant."""
    return request.headers.get(TENANT_HEADER) or DEFAULT_TENANT


class Authorizer(Protocol):
    """Decides whether a request may use a permission; raises HTTPException otherwise."""

    async def authorize(self, request: Request, permission: str) -> Principal: ...


class DevelopmentAuthorizer:
    """``CITYOS_AUTH=off``: everything is allowed, as the development principal."""

    async def authorize(self, request: Request, permission: str) -> Principal:
        return Principal(
            subject=DEVELOPER.subject, roles=DEVELOPER.roles, tenant=requested_tenant(request)
        )


class DenyAllAuthorizer:
    """Refuses every protected route (401): what an unconfigured secure mode must do."""

    def __init__(self, reason: str = "authentication is required") -> None:
        self._reason = reason

    async def authorize(self, request: Request, permission: str) -> Principal:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"{self._reason} (permission {permission})",
            headers={"WWW-Authenticate": "Bearer"},
        )


PermissionDependency = Callable[[Request], Awaitable[Principal]]

#: Methods whose requests are writes: each one is an audit event (when the authorizer audits).
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Where FastAPI keeps a request's exit stack (closed once the response is sent).
_REQUEST_EXIT_STACK = "fastapi_inner_astack"


class WriteRecorder(Protocol):
    """An authorizer that also records every write it let through (see OidcAuthorizer)."""

    async def record_write(
        self, request: Request, principal: Principal, permission: str, *, outcome: str
    ) -> None: ...


@functools.cache
def require(permission: str) -> PermissionDependency:
    """A FastAPI dependency that lets the request through only with ``permission``.

    When the authorizer records writes, a POST/PUT/PATCH/DELETE that passed is an audit
    event once the route has finished: ``success``, or ``failure`` when it answered an error
    status (:mod:`.write_audit`; without that middleware: when the route raised).
    Layers may emit richer events of their own (the entity changed, the rule edited).

    A plain coroutine, not a generator dependency (each request would pay FastAPI's context
    manager machinery for it): the middleware audits after the response; without it, the
    audit is an exit callback on the request's exit stack, which FastAPI closes after the
    route, with the route's exception if it raised one. No stack there: refused (503).

    One dependency per permission name (cached), so a route that also asks for the
    caller's :func:`data_scope` is authorized once per request: FastAPI reuses the value
    of a dependency it has already solved for the request.
    """
    if not permission or permission == PUBLIC:
        raise ValueError("require() needs a real permission name; use public() for open routes")

    async def check_permission(request: Request) -> Principal:
        authorizer: Authorizer | None = getattr(request.app.state, "authorizer", None)
        if authorizer is None:
            raise HTTPException(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="no authorizer is configured; refusing",
            )
        principal = await authorizer.authorize(request, permission)
        recorder = getattr(authorizer, "record_write", None)
        if recorder is None or request.method not in WRITE_METHODS:
            return principal
        if getattr(request.state, DEFERRED, False):
            # The runtime's middleware audits it with the status actually answered.
            setattr(request.state, PENDING, (principal, permission))
            return principal
        stack = request.scope.get(_REQUEST_EXIT_STACK)
        if not isinstance(stack, AsyncExitStack):
            raise HTTPException(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="this write cannot be audited here; refusing",
            )
        stack.push_async_exit(_WriteAudited(recorder, request, principal, permission))
        return principal

    check_permission.cityos_permission = permission  # type: ignore[attr-defined]
    return check_permission


class _WriteAudited:
    """Exit callback: records the write once the route finished (``failure`` if it raised)."""

    __slots__ = ("permission", "principal", "recorder", "request")

    def __init__(
        self,
        recorder: Callable[..., Awaitable[None]],
        request: Request,
        principal: Principal,
        permission: str,
    ) -> None:
        self.recorder = recorder
        self.request = request
        self.principal = principal
        self.permission = permission

    async def __call__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc is None:
            outcome = "success"
        elif isinstance(exc, Exception):
            outcome = "failure"
        else:  # cancelled, interrupted: nothing was answered
            return False
        await self.recorder(self.request, self.principal, self.permission, outcome=outcome)
        return False  # never swallows the route's exception


@functools.cache
def data_scope(permission: str) -> Callable[..., Awaitable[DataScope]]:
    """A dependency giving the data scope of the caller that ``require(permission)`` admits.

    Routes pass it to the knowledge facade (level-1 authorization, evaluated in SQL)::

        ReadScope = Annotated[DataScope, Depends(data_scope("entities:read"))]
    """
    check = require(permission)

    # A default, not Annotated[...]: the annotation is a string (PEP 563) that FastAPI
    # resolves in this module's globals, where the local ``check`` does not exist.
    async def scope_of_caller(principal: Principal = Depends(check)) -> DataScope:  # noqa: B008
        return principal.scope

    scope_of_caller.cityos_permission = permission  # type: ignore[attr-defined]
    return scope_of_caller


def public() -> PermissionDependency:
    """A FastAPI dependency marking a route as deliberately open to anyone."""

    async def allow_public(request: Request) -> Principal:
        return ANONYMOUS

    allow_public.cityos_permission = PUBLIC  # type: ignore[attr-defined]
    return allow_public


def required_permission(dependency: object) -> str | None:
    """The permission a dependency declares, if it is one of ours."""
    permission = getattr(dependency, "cityos_permission", None)
    return permission if isinstance(permission, str) else None
