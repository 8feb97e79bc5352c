"""``CITYOS_AUTH=keycloak``: bearer tokens checked locally, then the policies.

For each protected route the authorizer:

1. reads ``Authorization: Bearer <token>`` — absent or invalid: **401** with a
   ``WWW-Authenticate: Bearer error="invalid_token"`` challenge;
2. folds the policies of the token's roles (:mod:`.policy`) — the permission of the route
   not granted: **403** (``insufficient_scope``);
3. checks the tenant the request addresses (``NGSILD-Tenant``) against the token's tenants —
   another tenant: **403**.

Every refusal (an invalid token, a missing permission, another tenant) is an audit event
with outcome ``denied`` on ``support.audit.v1``; the request is refused even when the bus is
down. Every write it lets through is an audit event too (:meth:`OidcAuthorizer.record_write`,
called by :func:`~cityos_support.security.dependencies.require`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import HTTPException, Request, status

from cityos_support.audit.emitter import AuditEmitter
from cityos_support.security.dependencies import Principal, requested_tenant
from cityos_support.security.policy import PolicyDocument, evaluate
from cityos_support.security.tokens import (
    Identity,
    IssuerUnavailableError,
    TokenError,
    TokenValidator,
)

logger = logging.getLogger(__name__)

PolicySource = Callable[[], PolicyDocument]


def _challenge(error: str, description: str) -> dict[str, str]:
    safe = description.replace('"', "'")
    return {"WWW-Authenticate": f'Bearer error="{error}", error_description="{safe}"'}


class OidcAuthorizer:
    """Validates Keycloak access tokens and applies the authorization policies."""

    def __init__(
        self,
        validator: TokenValidator,
        policies: PolicySource,
        *,
        audit: AuditEmitter | None = None,
    ) -> None:
        self._validator = validator
        self._policies = policies
        self._audit = audit

    @property
    def policies(self) -> PolicySource:
        """Where the policies in force come from (a ``LiveValue`` when they are configurable)."""
        return self._policies

    async def authorize(self, request: Request, permission: str) -> Principal:
        tenant = requested_tenant(request)
        token = _bearer_token(request)
        if token is None:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail=f"a bearer token is required (permission {permission})",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            # A token seen before is answered from memory; only new ones need a thread
            # (signature checks, and perhaps a key fetch).
            identity = self._validator.cached(token)
            if identity is None:
                identity = await asyncio.to_thread(self._validator.validate, token)
        except TokenError as exc:
            await self._deny(request, "anonymous", None, tenant, permission, str(exc))
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail=f"invalid bearer token: {exc}",
                headers=_challenge("invalid_token", str(exc)),
            ) from exc
        except IssuerUnavailableError as exc:
            logger.error("cannot validate tokens: %s", exc)
            raise HTTPException(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="the identity provider's keys cannot be fetched; try again later",
            ) from exc
        if getattr(self._policies, "is_stale", True):
            policy = await asyncio.to_thread(self._policies)
        else:
            policy = self._policies()
        principal = principal_for(identity, policy, tenant=tenant)
        assert principal.grants is not None
        if not principal.grants.allows(permission):
            reason = f"roles {sorted(identity.roles)} do not grant {permission}"
            await self._deny(request, identity.subject, identity.client, tenant, permission, reason)
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"permission {permission} is not granted to this subject",
                headers=_challenge("insufficient_scope", f"needs {permission}"),
            )
        if not principal.scope.allows_tenant(tenant):
            reason = f"tenant {tenant} is not among the subject's tenants"
            await self._deny(request, identity.subject, identity.client, tenant, permission, reason)
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"no access to tenant {tenant}",
            )
        return principal

    async def record_write(
        self, request: Request, principal: Principal, permission: str, *, outcome: str
    ) -> None:
        """Audit a write this authorizer let through, once its route has finished.

        A route may name its target and add details (``request.state.audit_target``,
        ``request.state.audit_details``); the default target is the method and path.
        """
        if self._audit is None:
            return
        target = getattr(request.state, "audit_target", None)
        details = getattr(request.state, "audit_details", None)
        await asyncio.to_thread(
            self._audit.emit_safely,
            subject=principal.subject,
            client=principal.client,
            action=permission,
            target=target or f"{request.method} {request.url.path}",
            outcome=outcome,
            tenant=principal.tenant,
            correlation_id=request.headers.get("X-Correlation-Id"),
            details={"request": f"{request.method} {request.url.path}", **(details or {})},
        )

    async def _deny(
        self,
        request: Request,
        subject: str,
        client: str | None,
        tenant: str,
        permission: str,
        reason: str,
    ) -> None:
        if self._audit is None:
            return
        await asyncio.to_thread(
            self._audit.emit_safely,
            subject=subject,
            client=client,
            action=permission,
            target=f"{request.method} {request.url.path}",
            outcome="denied",
            tenant=tenant,
            correlation_id=request.headers.get("X-Correlation-Id"),
            details={"reason": reason},
        )


def principal_for(identity: Identity, policy: PolicyDocument, *, tenant: str) -> Principal:
    """The principal of a validated token under ``policy``.

    A platform administrator reaches every tenant; everyone else only the tenants the token
    lists.
    """
    tenants = None if "platform-admin" in identity.roles else identity.tenants
    subjects = [identity.subject] + ([identity.client] if identity.client else [])
    grants = evaluate(policy, roles=identity.roles, subjects=subjects, tenants=tenants)
    return Principal(
        subject=identity.subject,
        roles=identity.roles,
        tenants=tenants,
        client=identity.client,
        tenant=tenant,
        grants=grants,
    )


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()
