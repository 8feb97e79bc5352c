"""Building observation envelopes and reading the stores back, for the ingest tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from cityos_kernel.bus import Bus, Record
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import OBSERVATIONS
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import attribute_instances, attributes, entities, outbox

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
START = datetime(2026, 11, 1, tzinfo=UTC)


def observation(
    entity: str,
    minute: int,
    *,
    temperature: float | None = None,
    entity_type: str = "WeatherObserved",
    location: Any = None,
    extra: list[ObservedAttribute] | None = None,
) -> ObservationV1:
    at = START + timedelta(minutes=minute)
    measured = [
        ObservedAttribute(
            name="temperature",
            value=temperature if temperature is not None else 20.0 + minute,
            observed_at=at,
            unit_code="CEL",
        )
    ]
    if location is not None:
        measured.append(
            ObservedAttribute(name="location", kind="GeoProperty", value=location, observed_at=at)
        )
    measured.extend(extra or [])
    return ObservationV1(entity_id=entity, entity_type=entity_type, attributes=measured)


def publish(bus: Bus, observations: list[ObservationV1], *, tenant: str | None = None) -> None:
    bus.publish(
        [
            Record(
                OBSERVATIONS.name,
                item.entity_id,
                OBSERVATIONS.encode(OBSERVATIONS.envelope(item, source="test", tenant=tenant)),
            )
            for item in observations
        ]
    )


def count_instances(store: KnowledgeStore, tenant: str | None = None) -> int:
    schema = store.tenants.lookup(tenant)
    with store.engine.connect() as raw:
        return int(
            bind_schema(raw, schema)
            .execute(select(func.count()).select_from(attribute_instances))
            .scalar_one()
        )


def current_values(store: KnowledgeStore, tenant: str | None = None) -> dict[tuple[str, str], Any]:
    schema = store.tenants.lookup(tenant)
    with store.engine.connect() as raw:
        rows = bind_schema(raw, schema).execute(
            select(attributes.c.entity_id, attributes.c.name, attributes.c.value)
        )
        return {(row.entity_id, row.name.removeprefix(VOCAB)): row.value for row in rows}


def entity_documents(store: KnowledgeStore, tenant: str | None = None) -> dict[str, Any]:
    schema = store.tenants.lookup(tenant)
    with store.engine.connect() as raw:
        rows = bind_schema(raw, schema).execute(select(entities.c.id, entities.c.entity))
        return {row.id: row.entity for row in rows}


def outbox_events(store: KnowledgeStore) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(outbox.c.envelope).order_by(outbox.c.id))
        return [row.envelope for row in rows]
