"""The registry service: provisioning operations, device resolution and its cache.

A device change and its ``acquisition.devices.v1`` event are written in one transaction
(the event to the outbox); after the commit the cache is cleared, in-process listeners
hear of it and the outbox is relayed (ADR 0028), so other processes and layers hear of it
only once it is true.
Resolution results are cached for ``cache_ttl`` seconds; a change made in this process
clears the cache at once, one made by another process is seen within the TTL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cityos_acquisition.codecs.lorawan import LoraUplink
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.mapping.mapper import MappingError, device_entity_id
from cityos_acquisition.registry.outbox import OutboxEvent, device_event
from cityos_acquisition.registry.profiles import build_profile
from cityos_acquisition.registry.records import (
    DeviceRecord,
    GroupRecord,
    UnresolvedDeviceError,
)
from cityos_acquisition.registry.schemas import DeviceIn, GroupIn, lorawan_application_key
from cityos_acquisition.registry.store import RegistryStore
from cityos_kernel.bus.consumer import ConsumerSpec, Message
from cityos_kernel.bus.port import Bus
from cityos_kernel.events.payloads import DeviceEventV1
from cityos_kernel.events.topics import DEVICES

logger = logging.getLogger(__name__)

#: Device events that change what a lookup returns.
CHANGES = frozenset({"provisioned", "updated", "deleted"})
DeviceEventKind = str


@dataclass(frozen=True)
class Scope:
    """Who is asking: the tenant and, for the IoT Agent API, the service path."""

    tenant: str
    service_path: str | None


def device_record(tenant: str, service_path: str, device: DeviceIn) -> DeviceRecord:
    lorawan = device.lorawan
    return DeviceRecord(
        tenant=tenant,
        service_path=service_path,
        device_id=device.device_id,
        apikey=device.apikey,
        dev_eui=lorawan.dev_eui if lorawan else None,
        lorawan_application=lorawan_application_key(lorawan.application_id) if lorawan else None,
        document=device.document(),
    )


def group_record(tenant: str, service_path: str, group: GroupIn) -> GroupRecord:
    lorawan = group.lorawan
    return GroupRecord(
        tenant,
        service_path,
        group.resource,
        group.apikey,
        group.document(),
        lorawan_application_key(lorawan.application_id) if lorawan else None,
    )


class Registry:
    """Groups and devices of every tenant, with cached resolution for the transports."""

    def __init__(
        self,
        store: RegistryStore,
        bus: Bus,
        *,
        cache_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._bus = bus
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: dict[tuple[str, ...], tuple[float, DeviceProfile | str]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[DeviceEventV1, str], None]] = []

    # -- change notification ---------------------------------------------------------
    def add_listener(self, listener: Callable[[DeviceEventV1, str], None]) -> None:
        """Called with each published device event and its tenant (health, commands)."""
        self._listeners.append(listener)

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    @staticmethod
    def _outbox(events: Sequence[tuple[str, DeviceEventV1]]) -> list[OutboxEvent]:
        return [device_event(tenant, event) for tenant, event in events]

    def _committed(self, events: Sequence[tuple[str, DeviceEventV1]]) -> None:
        """After the commit of a change and its events: cache, listeners, relay."""
        self.invalidate()
        for tenant, event in events:
            for listener in self._listeners:
                listener(event, tenant)
        self.relay_outbox()

    def relay_outbox(self) -> None:
        """Publish the outbox now; what the bus does not take waits for the relay service."""
        try:
            while self.store.relay_outbox(self._bus.publish):
                pass
        except Exception:
            logger.warning(
                "device events not published yet; the outbox relay retries", exc_info=True
            )

    def _event(self, record: DeviceRecord, kind: Any) -> tuple[str, DeviceEventV1]:
        summary: dict[str, Any] = {
            **record.document,
            "service_path": record.service_path,
        }
        try:
            summary["entity_id"] = device_entity_id(self.profile(record))
        except MappingError:  # an entityNameExp that needs measures: no id before them
            logger.debug("no entity id for %s before its first measure", record.device_id)
        return record.tenant, DeviceEventV1(device_id=record.device_id, event=kind, device=summary)

    # -- groups -----------------------------------------------------------------------
    def create_groups(self, scope: Scope, groups: Sequence[GroupIn]) -> None:
        path = scope.service_path or "/"
        self.store.insert_groups([group_record(scope.tenant, path, group) for group in groups])
        self.invalidate()

    def list_groups(self, scope: Scope) -> list[GroupRecord]:
        return self.store.list_groups(scope.tenant, scope.service_path)

    def find_group(self, scope: Scope, resource: str, apikey: str) -> GroupRecord | None:
        return next(
            (
                group
                for group in self.store.list_groups(scope.tenant, scope.service_path or "/")
                if group.resource == resource and group.apikey == apikey
            ),
            None,
        )

    def update_group(self, group: GroupRecord, changes: dict[str, Any]) -> GroupRecord:
        # resource and apikey identify the group; changing them is delete + create.
        merged = GroupIn.model_validate(
            {**group.document, **changes, "resource": group.resource, "apikey": group.apikey}
        )
        updated = group_record(group.tenant, group.service_path, merged)
        self.store.replace_group(updated)
        self.invalidate()
        return updated

    def delete_group(self, group: GroupRecord) -> None:
        self.store.delete_group(group.tenant, group.service_path, group.resource, group.apikey)
        self.invalidate()

    # -- devices ----------------------------------------------------------------------
    def create_devices(self, scope: Scope, devices: Sequence[DeviceIn]) -> list[DeviceRecord]:
        path = scope.service_path or "/"
        records = [device_record(scope.tenant, path, device) for device in devices]
        events = [self._event(record, "provisioned") for record in records]
        self.store.insert_devices(records, self._outbox(events))
        self._committed(events)
        return records

    def get_device(self, scope: Scope, device_id: str) -> DeviceRecord | None:
        record = self.store.get_device(scope.tenant, device_id)
        if record is None or scope.service_path not in (None, record.service_path):
            return None
        return record

    def list_devices(self, scope: Scope, limit: int, offset: int) -> tuple[int, list[DeviceRecord]]:
        return self.store.list_devices(scope.tenant, scope.service_path, limit, offset)

    def update_device(self, record: DeviceRecord, changes: dict[str, Any]) -> DeviceRecord:
        merged = DeviceIn.model_validate(
            {**record.document, **changes, "device_id": record.device_id}
        )
        updated = device_record(record.tenant, record.service_path, merged)
        events = [self._event(updated, "updated")]
        self.store.replace_device(updated, self._outbox(events))
        self._committed(events)
        return updated

    def delete_device(self, record: DeviceRecord) -> None:
        events = [self._event(record, "deleted")]
        deleted = self.store.delete_device(record.tenant, record.device_id, self._outbox(events))
        if deleted is not None:
            self._committed(events)

    # -- resolution -------------------------------------------------------------------
    def group_of(self, record: DeviceRecord) -> GroupRecord | None:
        if record.apikey:
            groups = [
                g for g in self.store.groups_by_apikey(record.apikey) if g.tenant == record.tenant
            ]
        else:
            groups = self.store.list_groups(record.tenant, record.service_path)
            groups = groups if len(groups) == 1 else []
        return groups[0] if groups else None

    def profile(self, record: DeviceRecord) -> DeviceProfile:
        return build_profile(record, self.group_of(record))

    def _cached(self, key: tuple[str, ...], resolve: Callable[[], DeviceProfile]) -> DeviceProfile:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            if isinstance(hit[1], str):
                raise UnresolvedDeviceError(hit[1])
            return hit[1]
        try:
            outcome: DeviceProfile | str = resolve()
        except UnresolvedDeviceError as exc:
            outcome = exc.reason
        with self._lock:
            self._cache[key] = (now + self._ttl, outcome)
        if isinstance(outcome, str):
            raise UnresolvedDeviceError(outcome)
        return outcome

    def resolve(self, apikey: str, device_id: str, *, resource: str | None = None) -> DeviceProfile:
        """The device that sent ``apikey``/``device_id`` (autoprovisioned when allowed)."""
        return self._cached(
            ("measure", apikey, device_id), lambda: self._resolve(apikey, device_id, resource)
        )

    def _resolve(self, apikey: str, device_id: str, resource: str | None) -> DeviceProfile:
        candidates = self.store.devices_by_id(device_id)
        for record in candidates:
            group = self.group_of(record)
            effective = record.apikey or (group.apikey if group else None)
            if effective == apikey:
                return build_profile(record, group)
        groups = self.store.groups_by_apikey(apikey)
        if not groups:
            if candidates:
                raise UnresolvedDeviceError(f"wrong apikey {apikey!r} for device {device_id!r}")
            raise UnresolvedDeviceError(f"unknown apikey {apikey!r}")
        preferred = [g for g in groups if resource is not None and g.resource == resource]
        group = (preferred or groups)[0]
        if not GroupIn.model_validate(group.document).autoprovision:
            raise UnresolvedDeviceError(
                f"device {device_id!r} is not provisioned and the group of apikey {apikey!r} "
                "does not autoprovision"
            )
        return self._autoprovision(group, DeviceIn(device_id=device_id, apikey=group.apikey))

    def _autoprovision(self, group: GroupRecord, device: DeviceIn) -> DeviceProfile:
        """Create ``device`` in ``group`` (an unknown device's first message, as the IoT
        Agents do); the group gives it entity type, attributes and commands."""
        device_id = device.device_id
        record = device_record(group.tenant, group.service_path, device)
        tenant, event = self._event(record, "provisioned")
        events = [(tenant, event.model_copy(update={"details": {"autoprovisioned": True}}))]
        try:
            self.store.insert_devices([record], self._outbox(events))
        except Exception:
            # Another process provisioned it at the same moment: use what is stored.
            stored = self.store.get_device(group.tenant, device_id)
            if stored is None:
                raise
            record = stored
        else:
            logger.info("autoprovisioned device %s in %s", device_id, group.tenant)
            self._committed(events)
        return build_profile(record, group)

    def resolve_lorawan(self, uplink: LoraUplink) -> DeviceProfile:
        """The device a ChirpStack or TTS uplink comes from."""
        key = ("lora", uplink.network, uplink.application_id, uplink.device_id)
        return self._cached(key, lambda: self._resolve_lorawan(uplink))

    def _resolve_lorawan(self, uplink: LoraUplink) -> DeviceProfile:
        record = None
        if uplink.network == "tts":
            record = self.store.device_by_lorawan_id(uplink.application_id, uplink.device_id)
        if record is None and uplink.dev_eui:
            record = self.store.device_by_dev_eui(uplink.dev_eui)
        if record is not None:
            return self.profile(record)
        groups = (
            self.store.groups_by_lorawan_application(uplink.application_id)
            if uplink.application_id
            else []
        )
        if not groups:
            raise UnresolvedDeviceError(
                f"unknown LoRaWAN device {uplink.device_id!r} "
                f"(application {uplink.application_id!r}, devEUI {uplink.dev_eui})"
            )
        group = groups[0]
        shared = GroupIn.model_validate(group.document)
        if not shared.autoprovision:
            raise UnresolvedDeviceError(
                f"LoRaWAN device {uplink.device_id!r} is not provisioned and the group of "
                f"application {uplink.application_id!r} does not autoprovision"
            )
        lorawan = shared.lorawan.document() if shared.lorawan else {}
        lorawan["provider"] = uplink.network
        if uplink.dev_eui:
            lorawan["dev_eui"] = uplink.dev_eui
        # ChirpStack names a device by its devEUI, The Things Stack by its device id.
        device = DeviceIn.model_validate(
            {"device_id": uplink.device_id, "apikey": group.apikey, "lorawan": lorawan}
        )
        return self._autoprovision(group, device)

    def find_by_entity(
        self, tenant: str, entity_id: str, device_id: str | None
    ) -> DeviceProfile | None:
        """The device behind an entity (for commands)."""
        if device_id:
            record = self.store.get_device(tenant, device_id)
            return self.profile(record) if record else None
        for record in self.store.all_devices():
            if record.tenant != tenant:
                continue
            profile = self.profile(record)
            # An entityNameExp that needs measures cannot be matched here.
            with contextlib.suppress(MappingError):
                if device_entity_id(profile) == entity_id:
                    return profile
        return None


def cache_invalidation_consumer(registry: Registry, replica: str) -> ConsumerSpec:
    """Clears this process's cache when any process announces a device change.

    The group is per replica (named after its MQTT client id, which is unique per replica
    anyway), so every replica hears every change.
    """

    def handle(batch: Sequence[Message]) -> None:
        if any(message.envelope.payload.event in CHANGES for message in batch):  # type: ignore[attr-defined]
            registry.invalidate()

    return ConsumerSpec(
        "acquisition-registry-cache", f"acquisition-registry-cache-{replica}", [DEVICES], handle
    )
