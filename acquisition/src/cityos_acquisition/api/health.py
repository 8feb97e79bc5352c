"""``/iot/health``: what the layer knows about each device's activity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from cityos_acquisition.api.tenancy import ScopeDep
from cityos_acquisition.health.monitor import HealthMonitor
from cityos_support.security import require


def health_router(monitor: HealthMonitor) -> APIRouter:
    router = APIRouter(prefix="/iot", tags=["acquisition: devices"])

    @router.get(
        "/health", operation_id="iot_device_health", dependencies=[Depends(require("devices:read"))]
    )
    def device_health(scope: ScopeDep) -> dict[str, Any]:
        """Last seen, message rate, battery and RSSI of the tenant's active devices."""
        devices = monitor.snapshot(scope.tenant)
        return {"count": len(devices), "devices": devices}

    return router
