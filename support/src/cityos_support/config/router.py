"""``/admin/api``: the configuration repository over REST, and ``/admin``, its web page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from cityos_kernel.bus.port import Bus
from cityos_support.config.broadcast import publish_change
from cityos_support.config.keys import KNOWN_KEYS, validate_value
from cityos_support.config.live import LiveValue
from cityos_support.config.repository import ConfigEntry, ConfigRepository, VersionConflictError
from cityos_support.config.schemas import (
    ConfigEntryOut,
    ConfigWrite,
    RoleSummary,
    UserRolesOut,
    UsersOut,
    WhoAmI,
)
from cityos_support.security.dependencies import Principal, public, require
from cityos_support.security.directory import DirectoryError, UserDirectory
from cityos_support.security.policy import POLICY_KEY, PolicyDocument

ReadPrincipal = Annotated[Principal, Depends(require("config:read"))]
WritePrincipal = Annotated[Principal, Depends(require("config:write"))]
PolicyPrincipal = Annotated[Principal, Depends(require("policies:write"))]
UsersPrincipal = Annotated[Principal, Depends(require("users:read"))]

NO_DIRECTORY = (
    "the users' roles summary reads Keycloak's admin API: run with CITYOS_AUTH=keycloak and "
    "set CITYOS_KEYCLOAK_ADMIN_URL and CITYOS_KEYCLOAK_ADMIN_PASSWORD"
)


def _out(entry: ConfigEntry) -> ConfigEntryOut:
    known = KNOWN_KEYS.get(entry.key)
    return ConfigEntryOut(
        key=entry.key,
        version=entry.version,
        value=entry.value,
        changed_by=entry.changed_by,
        changed_at=entry.changed_at,
        comment=entry.comment,
        description=known.description if known else None,
    )


def _default(key: str) -> ConfigEntryOut | None:
    known = KNOWN_KEYS.get(key)
    if known is None:
        return None
    return ConfigEntryOut(
        key=key,
        version=0,
        value=known.default.model_dump(mode="json"),
        description=known.description,
    )


def admin_router(
    repository: Callable[[], ConfigRepository],
    bus: Bus,
    live: Mapping[str, LiveValue[Any]],
    users: UserDirectory | None = None,
) -> APIRouter:
    """The REST API of the configuration repository (``repository`` raises 503 without DB)
    and the users' roles summary (``users``: Keycloak's admin API; 503 without it)."""
    router = APIRouter(prefix="/admin/api", tags=["admin"])

    @router.get("/config", operation_id="admin_list_config")
    async def list_config(principal: ReadPrincipal) -> list[ConfigEntryOut]:
        """Every configuration key with its current version (known keys with their default)."""
        current = await asyncio.to_thread(repository().current)
        found = {key: _out(entry) for key, entry in current.items()}
        for key in KNOWN_KEYS:
            if key not in found:
                default = _default(key)
                assert default is not None
                found[key] = default
        return [found[key] for key in sorted(found)]

    @router.get("/config/{key}", operation_id="admin_get_config")
    async def get_config(key: str, principal: ReadPrincipal) -> ConfigEntryOut:
        """The current version of one key."""
        entry = await asyncio.to_thread(repository().get, key)
        found = _out(entry) if entry else _default(key)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no configuration key {key!r}")
        return found

    @router.get("/config/{key}/history", operation_id="admin_config_history")
    async def config_history(key: str, principal: ReadPrincipal) -> list[ConfigEntryOut]:
        """Every version of one key, newest first."""
        return [_out(entry) for entry in await asyncio.to_thread(repository().history, key)]

    async def write(
        request: Request, key: str, body: ConfigWrite, principal: Principal
    ) -> ConfigEntryOut:
        try:
            value = validate_value(key, body.value)
        except ValidationError as exc:
            raise HTTPException(
                422,
                [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()],
            ) from exc
        try:
            entry = await asyncio.to_thread(
                repository().put,
                key,
                value,
                changed_by=principal.subject,
                expected_version=body.expected_version,
                comment=body.comment,
            )
        except VersionConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        # After the commit: announce it (running processes apply it). The write's audit
        # event is emitted by the security seam when the route returns, with these details.
        request.state.audit_target = f"config:{key}"
        request.state.audit_details = {"version": entry.version, "comment": body.comment}
        await asyncio.to_thread(publish_change, bus, entry)
        return _out(entry)

    @router.put("/config/{key}", operation_id="admin_put_config")
    async def put_config(
        request: Request, key: str, body: ConfigWrite, principal: WritePrincipal
    ) -> ConfigEntryOut:
        """Write a new version of a key (known keys are validated first)."""
        return await write(request, key, body, principal)

    @router.put("/policies", operation_id="admin_put_policies")
    async def put_policies(
        request: Request, body: ConfigWrite, principal: PolicyPrincipal
    ) -> ConfigEntryOut:
        """Write a new version of the authorization policies."""
        return await write(request, POLICY_KEY, body, principal)

    @router.get("/roles", operation_id="admin_roles")
    async def roles(principal: ReadPrincipal) -> list[RoleSummary]:
        """What each role is granted by the policies in force."""
        policy: PolicyDocument = live[POLICY_KEY].get()
        return [
            RoleSummary(
                role=name,
                permissions=sorted(grant.permissions),
                read_types=sorted(grant.read_types),
                write_types=sorted(grant.write_types),
                elements={kind: sorted(patterns) for kind, patterns in grant.elements.items()},
            )
            for name, grant in sorted(policy.roles.items())
        ]

    @router.get("/users", operation_id="admin_users")
    async def users_summary(principal: UsersPrincipal) -> UsersOut:
        """Users, with their platform roles and tenants, as Keycloak has them."""
        if users is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NO_DIRECTORY)
        try:
            summary = await asyncio.to_thread(users.summary)
        except DirectoryError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
        return UsersOut(
            users=[
                UserRolesOut(
                    username=user.username,
                    enabled=user.enabled,
                    roles=user.roles,
                    tenants=user.tenants,
                    source=user.source,
                )
                for user in summary.users
            ],
            truncated=summary.truncated,
        )

    @router.get("/applied", operation_id="admin_applied")
    async def applied(principal: ReadPrincipal) -> dict[str, int]:
        """The version of each known key this process has in force."""
        return {key: value.version for key, value in sorted(live.items())}

    @router.get("/whoami", operation_id="admin_whoami")
    async def whoami(principal: ReadPrincipal) -> WhoAmI:
        """Who the token says the caller is."""
        return WhoAmI(
            subject=principal.subject,
            client=principal.client,
            roles=sorted(principal.roles),
            tenants=None if principal.tenants is None else sorted(principal.tenants),
        )

    return router


def admin_page_router() -> APIRouter:
    """``/admin``: a static page that talks to ``/admin/api`` with the user's token.

    Public on purpose: the page itself holds no data; everything it shows comes from the
    API, which checks the token on each call.
    """
    router = APIRouter(tags=["admin"])
    page = resources.files("cityos_support.config").joinpath("admin.html").read_text("utf-8")

    @router.get(
        "/admin",
        operation_id="admin_page",
        response_class=HTMLResponse,
        dependencies=[Depends(public())],
    )
    async def admin_page() -> HTMLResponse:
        """The web administration page."""
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    return router
