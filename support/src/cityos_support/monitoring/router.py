"""``/support/monitoring``: the warnings currently firing in this process."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from cityos_support.monitoring.service import MonitoringService
from cityos_support.security.dependencies import Principal, require

MonitoringReader = Annotated[Principal, Depends(require("monitoring:read"))]


def monitoring_router(service: MonitoringService) -> APIRouter:
    router = APIRouter(prefix="/support/monitoring", tags=["monitoring"])

    @router.get("/warnings", operation_id="monitoring_warnings")
    async def warnings(principal: MonitoringReader) -> list[dict[str, object]]:
        """Warnings firing now, by rule and labels."""
        return [
            {"rule": rule, "labels": dict(labels)}
            for rule, labels in sorted(service.evaluator.firing)
        ]

    return router
