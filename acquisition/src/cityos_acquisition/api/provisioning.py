"""The IoT-Agent-compatible provisioning API: ``/iot/groups``, ``/iot/devices``, ``/iot/about``.

Bodies, answers and error names follow the FIWARE IoT Agent northbound API, so the
provisioning scripts and tutorials written for it work against cityos unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

import cityos_acquisition
from cityos_acquisition.api.tenancy import ScopeDep
from cityos_acquisition.registry.records import DeviceRecord, RegistryConflictError
from cityos_acquisition.registry.schemas import DevicesIn, GroupsIn
from cityos_acquisition.registry.service import Registry
from cityos_support.security import public, require

READ = Depends(require("devices:read"))
WRITE = Depends(require("devices:write"))


def iot_error(code: int, name: str, message: str) -> JSONResponse:
    """An error in the IoT Agent's shape: ``{"name": ..., "message": ...}``."""
    return JSONResponse({"name": name, "message": message}, status_code=code)


def device_document(record: DeviceRecord) -> dict[str, Any]:
    return {
        **record.document,
        "service": record.tenant,
        "service_path": record.service_path,
    }


def provisioning_router(registry: Registry) -> APIRouter:
    router = APIRouter(prefix="/iot", tags=["acquisition: provisioning"])

    @router.get("/about", operation_id="iot_about", dependencies=[Depends(public())])
    def about() -> dict[str, Any]:
        """Version of this IoT-Agent-compatible endpoint."""
        return {
            "libVersion": "cityos-acquisition",
            "version": cityos_acquisition.__version__,
            "baseRoot": "/",
            "protocols": ["IoTA-JSON", "PDI-IoTA-UltraLight", "LoRaWAN"],
        }

    @router.post("/groups", operation_id="iot_create_groups", status_code=201, dependencies=[WRITE])
    def create_groups(scope: ScopeDep, body: GroupsIn) -> Response:
        """Create config groups."""
        groups = body.all()
        if not groups:
            return iot_error(400, "WRONG_SYNTAX", "the body has no groups")
        try:
            registry.create_groups(scope, groups)
        except RegistryConflictError as exc:
            return iot_error(409, "DUPLICATE_GROUP", str(exc))
        return Response(status_code=status.HTTP_201_CREATED)

    @router.get("/groups", operation_id="iot_list_groups", dependencies=[READ])
    def list_groups(scope: ScopeDep) -> dict[str, Any]:
        """List the config groups of the tenant (and service path, if given)."""
        groups = [
            {**group.document, "service": group.tenant, "subservice": group.service_path}
            for group in registry.list_groups(scope)
        ]
        return {"count": len(groups), "groups": groups}

    @router.put("/groups", operation_id="iot_update_group", status_code=204, dependencies=[WRITE])
    def update_group(
        scope: ScopeDep,
        resource: Annotated[str, Query()],
        apikey: Annotated[str, Query()],
        changes: Annotated[dict[str, Any], Body()],
    ) -> Response:
        """Change a config group (identified by resource and apikey)."""
        group = registry.find_group(scope, resource, apikey)
        if group is None:
            return iot_error(404, "DEVICE_GROUP_NOT_FOUND", f"no group {resource} {apikey}")
        try:
            registry.update_group(group, changes)
        except ValidationError as exc:
            return iot_error(400, "WRONG_SYNTAX", str(exc))
        return Response(status_code=204)

    @router.delete(
        "/groups", operation_id="iot_delete_group", status_code=204, dependencies=[WRITE]
    )
    def delete_group(
        scope: ScopeDep, resource: Annotated[str, Query()], apikey: Annotated[str, Query()]
    ) -> Response:
        """Delete a config group."""
        group = registry.find_group(scope, resource, apikey)
        if group is None:
            return iot_error(404, "DEVICE_GROUP_NOT_FOUND", f"no group {resource} {apikey}")
        registry.delete_group(group)
        return Response(status_code=204)

    @router.post(
        "/devices", operation_id="iot_create_devices", status_code=201, dependencies=[WRITE]
    )
    def create_devices(scope: ScopeDep, body: DevicesIn) -> Response:
        """Provision devices."""
        try:
            registry.create_devices(scope, body.devices)
        except RegistryConflictError as exc:
            return iot_error(409, "DUPLICATE_DEVICE_ID", str(exc))
        return Response(status_code=status.HTTP_201_CREATED)

    @router.get("/devices", operation_id="iot_list_devices", dependencies=[READ])
    def list_devices(
        scope: ScopeDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """List provisioned devices."""
        count, records = registry.list_devices(scope, limit, offset)
        return {"count": count, "devices": [device_document(r) for r in records]}

    @router.get("/devices/{device_id}", operation_id="iot_get_device", dependencies=[READ])
    def get_device(scope: ScopeDep, device_id: str) -> Any:
        """One provisioned device."""
        record = registry.get_device(scope, device_id)
        if record is None:
            return iot_error(404, "DEVICE_NOT_FOUND", f"no device {device_id}")
        return device_document(record)

    @router.put(
        "/devices/{device_id}",
        operation_id="iot_update_device",
        status_code=204,
        dependencies=[WRITE],
    )
    def update_device(
        scope: ScopeDep, device_id: str, changes: Annotated[dict[str, Any], Body()]
    ) -> Response:
        """Change a provisioned device."""
        record = registry.get_device(scope, device_id)
        if record is None:
            return iot_error(404, "DEVICE_NOT_FOUND", f"no device {device_id}")
        try:
            registry.update_device(record, changes)
        except ValidationError as exc:
            return iot_error(400, "WRONG_SYNTAX", str(exc))
        return Response(status_code=204)

    @router.delete(
        "/devices/{device_id}",
        operation_id="iot_delete_device",
        status_code=204,
        dependencies=[WRITE],
    )
    def delete_device(scope: ScopeDep, device_id: str) -> Response:
        """Remove a device."""
        record = registry.get_device(scope, device_id)
        if record is None:
            return iot_error(404, "DEVICE_NOT_FOUND", f"no device {device_id}")
        registry.delete_device(record)
        return Response(status_code=204)

    return router
