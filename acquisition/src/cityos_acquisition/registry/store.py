"""The registry's storage port and its in-memory adapter (unit tests, no-database runs)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from typing import Protocol

from cityos_acquisition.registry.outbox import OutboxEvent, Publish
from cityos_acquisition.registry.records import DeviceRecord, GroupRecord, RegistryConflictError

GroupKey = tuple[str, str, str, str]


class RegistryStore(Protocol):
    """Where groups and devices live. Every method is one transaction; ``events`` are
    written to the outbox in the transaction of the device change they describe."""

    def insert_groups(self, groups: Sequence[GroupRecord]) -> None: ...

    def replace_group(self, group: GroupRecord) -> None: ...

    def delete_group(self, tenant: str, service_path: str, resource: str, apikey: str) -> bool: ...

    def list_groups(self, tenant: str, service_path: str | None) -> list[GroupRecord]: ...

    def groups_by_apikey(self, apikey: str) -> list[GroupRecord]: ...

    def groups_by_lorawan_application(self, application_id: str) -> list[GroupRecord]: ...

    def insert_devices(
        self, devices: Sequence[DeviceRecord], events: Sequence[OutboxEvent] = ()
    ) -> None: ...

    def replace_device(self, device: DeviceRecord, events: Sequence[OutboxEvent] = ()) -> None: ...

    def delete_device(
        self, tenant: str, device_id: str, events: Sequence[OutboxEvent] = ()
    ) -> DeviceRecord | None:
        """Delete the device; ``events`` are written only if there was one to delete."""
        ...

    def relay_outbox(self, publish: Publish, limit: int = 500) -> int: ...

    def get_device(self, tenant: str, device_id: str) -> DeviceRecord | None: ...

    def list_devices(
        self, tenant: str, service_path: str | None, limit: int, offset: int
    ) -> tuple[int, list[DeviceRecord]]: ...

    def devices_by_id(self, device_id: str) -> list[DeviceRecord]: ...

    def device_by_dev_eui(self, dev_eui: str) -> DeviceRecord | None: ...

    def device_by_lorawan_id(self, application_id: str, device_id: str) -> DeviceRecord | None: ...

    def all_devices(self) -> list[DeviceRecord]: ...

    def check(self) -> str: ...


def group_key(group: GroupRecord) -> GroupKey:
    return (group.tenant, group.service_path, group.resource, group.apikey)


class MemoryRegistryStore:
    """Thread-safe in-process registry; the same semantics as the PostgreSQL store."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, GroupRecord] = {}
        self._devices: dict[tuple[str, str], DeviceRecord] = {}
        self._outbox: collections.deque[OutboxEvent] = collections.deque()
        self._lock = threading.Lock()
        self._relay_lock = threading.Lock()

    def insert_groups(self, groups: Sequence[GroupRecord]) -> None:
        with self._lock:
            keys = [group_key(group) for group in groups]
            taken = [key for key in keys if key in self._groups]
            if taken or len(set(keys)) != len(keys):
                raise RegistryConflictError(f"group {taken[0] if taken else keys} exists already")
            for group in groups:
                self._groups[group_key(group)] = group

    def replace_group(self, group: GroupRecord) -> None:
        with self._lock:
            self._groups[group_key(group)] = group

    def delete_group(self, tenant: str, service_path: str, resource: str, apikey: str) -> bool:
        with self._lock:
            return self._groups.pop((tenant, service_path, resource, apikey), None) is not None

    def list_groups(self, tenant: str, service_path: str | None) -> list[GroupRecord]:
        with self._lock:
            return [
                group
                for group in self._groups.values()
                if group.tenant == tenant and service_path in (None, group.service_path)
            ]

    def groups_by_apikey(self, apikey: str) -> list[GroupRecord]:
        with self._lock:
            return [group for group in self._groups.values() if group.apikey == apikey]

    def groups_by_lorawan_application(self, application_id: str) -> list[GroupRecord]:
        with self._lock:
            return [
                group
                for group in self._groups.values()
                if group.lorawan_application == application_id
            ]

    def insert_devices(
        self, devices: Sequence[DeviceRecord], events: Sequence[OutboxEvent] = ()
    ) -> None:
        with self._lock:
            keys = [(device.tenant, device.device_id) for device in devices]
            taken = [key for key in keys if key in self._devices]
            if taken or len(set(keys)) != len(keys):
                raise RegistryConflictError(f"device {(taken or keys)[0][1]} exists already")
            for device in devices:
                self._devices[(device.tenant, device.device_id)] = device
            self._outbox.extend(events)

    def replace_device(self, device: DeviceRecord, events: Sequence[OutboxEvent] = ()) -> None:
        with self._lock:
            self._devices[(device.tenant, device.device_id)] = device
            self._outbox.extend(events)

    def delete_device(
        self, tenant: str, device_id: str, events: Sequence[OutboxEvent] = ()
    ) -> DeviceRecord | None:
        with self._lock:
            deleted = self._devices.pop((tenant, device_id), None)
            if deleted is not None:
                self._outbox.extend(events)
            return deleted

    def relay_outbox(self, publish: Publish, limit: int = 500) -> int:
        with self._relay_lock:
            with self._lock:
                taken = [self._outbox.popleft() for _ in range(min(limit, len(self._outbox)))]
            if not taken:
                return 0
            try:
                publish([event.record() for event in taken])
            except BaseException:
                with self._lock:
                    self._outbox.extendleft(reversed(taken))
                raise
            return len(taken)

    def get_device(self, tenant: str, device_id: str) -> DeviceRecord | None:
        with self._lock:
            return self._devices.get((tenant, device_id))

    def list_devices(
        self, tenant: str, service_path: str | None, limit: int, offset: int
    ) -> tuple[int, list[DeviceRecord]]:
        with self._lock:
            found = sorted(
                (
                    device
                    for device in self._devices.values()
                    if device.tenant == tenant and service_path in (None, device.service_path)
                ),
                key=lambda device: device.device_id,
            )
        return len(found), found[offset : offset + limit]

    def devices_by_id(self, device_id: str) -> list[DeviceRecord]:
        with self._lock:
            return [device for device in self._devices.values() if device.device_id == device_id]

    def device_by_dev_eui(self, dev_eui: str) -> DeviceRecord | None:
        with self._lock:
            return next((d for d in self._devices.values() if d.dev_eui == dev_eui), None)

    def device_by_lorawan_id(self, application_id: str, device_id: str) -> DeviceRecord | None:
        with self._lock:
            return next(
                (
                    d
                    for d in self._devices.values()
                    if d.device_id == device_id and d.lorawan_application == application_id
                ),
                None,
            )

    def all_devices(self) -> list[DeviceRecord]:
        with self._lock:
            return list(self._devices.values())

    def check(self) -> str:
        return f"in-memory registry, {len(self._devices)} devices"
