"""``/support/audit``: the auditors' view of the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel

from cityos_support.audit.store import AuditStore
from cityos_support.security.dependencies import Principal, require

AuditReader = Annotated[Principal, Depends(require("audit:read"))]
AuditVerifier = Annotated[Principal, Depends(require("audit:verify"))]


class AuditRecordOut(BaseModel):
    tenant: str
    seq: int
    event_id: str
    event_time: datetime
    recorded_at: datetime
    source: str
    subject: str
    client: str | None
    action: str
    target: str
    outcome: str
    correlation_id: str | None
    details: dict[str, Any]
    record_hash: str


class VerificationOut(BaseModel):
    ok: bool
    tenants: int
    records: int
    checkpoints: int
    first_break: str | None
    breaks: list[str]


def audit_router(store: Callable[[], AuditStore]) -> APIRouter:
    router = APIRouter(prefix="/support/audit", tags=["audit"])

    @router.get("/records", operation_id="audit_records")
    async def records(
        principal: AuditReader,
        since: datetime | None = None,
        until: datetime | None = None,
        subject: str | None = None,
        tenant: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AuditRecordOut]:
        """Audit records in time order, by time range, subject and tenant."""
        allowed = principal.scope.tenants
        if tenant is not None:
            if allowed is not None and tenant not in allowed:
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"no access to tenant {tenant}")
            tenants: frozenset[str] | None = frozenset({tenant})
        else:
            tenants = allowed
        rows = await asyncio.to_thread(
            store().query, tenants=tenants, since=since, until=until, subject=subject, limit=limit
        )
        return [AuditRecordOut.model_validate(row) for row in rows]

    @router.get("/verify", operation_id="audit_verify")
    async def verify(principal: AuditVerifier) -> VerificationOut:
        """Recompute every hash chain and check the signed checkpoints."""
        report = await asyncio.to_thread(store().verify)
        breaks = [str(found) for found in report.breaks]
        return VerificationOut(
            ok=report.ok,
            tenants=report.tenants,
            records=report.records,
            checkpoints=report.checkpoints,
            first_break=breaks[0] if breaks else None,
            breaks=breaks,
        )

    return router
