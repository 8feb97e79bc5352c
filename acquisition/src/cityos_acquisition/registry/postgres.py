"""The registry on PostgreSQL (SQLAlchemy Core, psycopg2), one transaction per call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from cityos_acquisition.registry import tables
from cityos_acquisition.registry.outbox import OutboxEvent, Publish
from cityos_acquisition.registry.records import DeviceRecord, GroupRecord, RegistryConflictError


def _group(row: Any) -> GroupRecord:
    return GroupRecord(
        row.tenant,
        row.service_path,
        row.resource,
        row.apikey,
        row.document,
        row.lorawan_application,
    )


def _device(row: Any) -> DeviceRecord:
    return DeviceRecord(
        row.tenant,
        row.service_path,
        row.device_id,
        row.apikey,
        row.dev_eui,
        row.lorawan_application,
        row.document,
    )


def _group_values(group: GroupRecord) -> dict[str, Any]:
    return {
        "tenant": group.tenant,
        "service_path": group.service_path,
        "resource": group.resource,
        "apikey": group.apikey,
        "document": group.document,
        "lorawan_application": group.lorawan_application,
    }


def _device_values(device: DeviceRecord) -> dict[str, Any]:
    return {
        "tenant": device.tenant,
        "service_path": device.service_path,
        "device_id": device.device_id,
        "apikey": device.apikey,
        "dev_eui": device.dev_eui,
        "lorawan_application": device.lorawan_application,
        "document": device.document,
    }


#: Relays of one database take turns (transaction-scoped advisory lock): events leave in
#: outbox order.
_RELAY_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('cityos_acquisition.outbox'))")
#: Sent rows are kept this long for inspection, then deleted by the relay.
_CLEAN = text("DELETE FROM acquisition.outbox WHERE sent_at < now() - interval '1 day'")


def _write_events(connection: Connection, events: Sequence[OutboxEvent]) -> None:
    if events:
        connection.execute(
            insert(tables.outbox),
            [
                {"tenant": e.tenant, "topic": e.topic, "key": e.key, "envelope": e.envelope}
                for e in events
            ],
        )


class PostgresRegistryStore:
    """Groups and devices in ``acquisition.config_groups`` / ``acquisition.devices``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert_groups(self, groups: Sequence[GroupRecord]) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(tables.groups), [_group_values(g) for g in groups])
        except IntegrityError as exc:
            raise RegistryConflictError("a group with this resource and apikey exists") from exc

    def replace_group(self, group: GroupRecord) -> None:
        g = tables.groups.c
        with self._engine.begin() as connection:
            connection.execute(
                update(tables.groups)
                .where(
                    and_(
                        g.tenant == group.tenant,
                        g.service_path == group.service_path,
                        g.resource == group.resource,
                        g.apikey == group.apikey,
                    )
                )
                .values(
                    document=group.document,
                    lorawan_application=group.lorawan_application,
                    updated_at=func.now(),
                )
            )

    def delete_group(self, tenant: str, service_path: str, resource: str, apikey: str) -> bool:
        g = tables.groups.c
        with self._engine.begin() as connection:
            result = connection.execute(
                delete(tables.groups).where(
                    and_(
                        g.tenant == tenant,
                        g.service_path == service_path,
                        g.resource == resource,
                        g.apikey == apikey,
                    )
                )
            )
            return result.rowcount > 0

    def list_groups(self, tenant: str, service_path: str | None) -> list[GroupRecord]:
        g = tables.groups.c
        query = select(tables.groups).where(g.tenant == tenant).order_by(g.resource, g.apikey)
        if service_path is not None:
            query = query.where(g.service_path == service_path)
        with self._engine.connect() as connection:
            return [_group(row) for row in connection.execute(query)]

    def groups_by_apikey(self, apikey: str) -> list[GroupRecord]:
        query = select(tables.groups).where(tables.groups.c.apikey == apikey)
        with self._engine.connect() as connection:
            return [_group(row) for row in connection.execute(query)]

    def groups_by_lorawan_application(self, application_id: str) -> list[GroupRecord]:
        g = tables.groups.c
        query = (
            select(tables.groups)
            .where(g.lorawan_application == application_id)
            .order_by(g.tenant, g.service_path, g.resource, g.apikey)
        )
        with self._engine.connect() as connection:
            return [_group(row) for row in connection.execute(query)]

    def insert_devices(
        self, devices: Sequence[DeviceRecord], events: Sequence[OutboxEvent] = ()
    ) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(tables.devices), [_device_values(d) for d in devices])
                _write_events(connection, events)
        except IntegrityError as exc:
            raise RegistryConflictError("a device with this device_id exists") from exc

    def replace_device(self, device: DeviceRecord, events: Sequence[OutboxEvent] = ()) -> None:
        d = tables.devices.c
        values = _device_values(device)
        with self._engine.begin() as connection:
            connection.execute(
                update(tables.devices)
                .where(and_(d.tenant == device.tenant, d.device_id == device.device_id))
                .values(**values, updated_at=func.now())
            )
            _write_events(connection, events)

    def delete_device(
        self, tenant: str, device_id: str, events: Sequence[OutboxEvent] = ()
    ) -> DeviceRecord | None:
        d = tables.devices.c
        with self._engine.begin() as connection:
            row = connection.execute(
                delete(tables.devices)
                .where(and_(d.tenant == tenant, d.device_id == device_id))
                .returning(*tables.devices.c)
            ).first()
            if row is not None:
                _write_events(connection, events)
        return _device(row) if row else None

    def relay_outbox(self, publish: Publish, limit: int = 500) -> int:
        o = tables.outbox.c
        with self._engine.begin() as connection:
            connection.execute(_RELAY_LOCK)
            rows = connection.execute(
                select(o.id, o.topic, o.key, o.envelope)
                .where(o.sent_at.is_(None))
                .order_by(o.id)
                .limit(limit)
            ).all()
            if not rows:
                return 0
            publish([OutboxEvent("", row.topic, row.key, row.envelope).record() for row in rows])
            connection.execute(
                update(tables.outbox)
                .where(o.id.in_([row.id for row in rows]))
                .values(sent_at=func.now())
            )
            connection.execute(_CLEAN)
        return len(rows)

    def get_device(self, tenant: str, device_id: str) -> DeviceRecord | None:
        d = tables.devices.c
        with self._engine.connect() as connection:
            row = connection.execute(
                select(tables.devices).where(and_(d.tenant == tenant, d.device_id == device_id))
            ).first()
        return _device(row) if row else None

    def list_devices(
        self, tenant: str, service_path: str | None, limit: int, offset: int
    ) -> tuple[int, list[DeviceRecord]]:
        d = tables.devices.c
        condition = d.tenant == tenant
        if service_path is not None:
            condition = and_(condition, d.service_path == service_path)
        with self._engine.connect() as connection:
            count = connection.execute(
                select(func.count()).select_from(tables.devices).where(condition)
            ).scalar_one()
            rows = connection.execute(
                select(tables.devices)
                .where(condition)
                .order_by(d.device_id)
                .limit(limit)
                .offset(offset)
            )
            return int(count), [_device(row) for row in rows]

    def _devices_where(self, *conditions: Any) -> list[DeviceRecord]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(tables.devices).where(*conditions))
            return [_device(row) for row in rows]

    def devices_by_id(self, device_id: str) -> list[DeviceRecord]:
        return self._devices_where(tables.devices.c.device_id == device_id)

    def device_by_dev_eui(self, dev_eui: str) -> DeviceRecord | None:
        found = self._devices_where(tables.devices.c.dev_eui == dev_eui)
        return found[0] if found else None

    def device_by_lorawan_id(self, application_id: str, device_id: str) -> DeviceRecord | None:
        d = tables.devices.c
        found = self._devices_where(
            d.lorawan_application == application_id, d.device_id == device_id
        )
        return found[0] if found else None

    def all_devices(self) -> list[DeviceRecord]:
        return self._devices_where(text("true"))

    def check(self) -> str:
        with self._engine.connect() as connection:
            count = connection.execute(
                select(func.count()).select_from(tables.devices)
            ).scalar_one()
        return f"{count} devices registered"
