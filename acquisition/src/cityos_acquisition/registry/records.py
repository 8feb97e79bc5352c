"""What the registry stores: a group or device document with the keys it is found by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cityos_kernel.errors import CityosError


class RegistryConflictError(CityosError):
    """A group or device with the same identity exists already."""


@dataclass(frozen=True)
class GroupRecord:
    tenant: str
    service_path: str
    resource: str
    apikey: str
    document: dict[str, Any]
    #: The LoRaWAN application whose unknown devices this group autoprovisions.
    lorawan_application: str | None = None


@dataclass(frozen=True)
class DeviceRecord:
    tenant: str
    service_path: str
    device_id: str
    apikey: str | None
    dev_eui: str | None
    lorawan_application: str | None
    document: dict[str, Any]


class UnresolvedDeviceError(CityosError):
    """An input that no provisioned (or autoprovisionable) device accepts."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
