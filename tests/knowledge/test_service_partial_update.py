"""The facade's partial update of one attribute (its two-statement path) on a real PostgreSQL.

What it must keep from the general write path: the document rebuilt from the attribute rows
(ADR 0014), one history instance per new value (a repeated observedAt is not duplicated),
the change event with the entity before and after, and NotFound / BadRequestData with
nothing written.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text

from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_kernel.logging import log_context
from cityos_knowledge.entities.repository import document_update_sql
from cityos_knowledge.service import (
    BadRequestDataError,
    KnowledgeService,
    NotFoundError,
    parse_entity_query,
)
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import attribute_instances
from tests.knowledge.ingest_helpers import outbox_events

pytestmark = pytest.mark.postgres

V = "https://example.org/vocab/"
SPEED, NAME, OWNER = V + "speed", V + "name", V + "owner"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
VEHICLE = V + "Vehicle"
ENTITY = "urn:ngsi-ld:Vehicle:1"
GPS, RADAR = "urn:ngsi-ld:Dataset:gps", "urn:ngsi-ld:Dataset:radar"


def vehicle() -> dict[str, Any]:
    return {
        "id": ENTITY,
        "type": VEHICLE,
        "scope": ["/Madrid/Centro"],
        SPEED: [
            {"type": "Property", "value": 10.0, "observedAt": "2026-11-22T10:00:00Z"},
            {"type": "Property", "value": 11.0, "datasetId": GPS, "unitCode": "KMH"},
            {"type": "Property", "value": 12.0, "datasetId": RADAR},
        ],
        NAME: {"type": "Property", "value": "bus 27"},
        LOCATION: {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-3.7, 40.4]}},
    }


def rebuilt_document(store: KnowledgeStore, entity_id: str) -> dict[str, Any]:
    """The document as ADR 0014's rebuild makes it from the rows (in a rolled-back transaction)."""
    schema = store.tenants.lookup("city")
    with store.engine.connect() as connection, connection.begin() as transaction:
        row = connection.execute(
            text(document_update_sql(connection, schema)),
            {"now": "2026-01-01T00:00:00Z", "ids": [entity_id]},
        ).one()
        transaction.rollback()
    return dict(row.entity)


def history_values(store: KnowledgeStore, name: str, dataset_id: str) -> list[float]:
    schema = store.tenants.lookup("city")
    with store.engine.connect() as raw:
        connection = bind_schema(raw, schema)
        return list(
            connection.execute(
                select(attribute_instances.c.value_number)
                .where(
                    attribute_instances.c.entity_id == ENTITY,
                    attribute_instances.c.name == name,
                    attribute_instances.c.dataset_id == dataset_id,
                )
                .order_by(attribute_instances.c.created_at, attribute_instances.c.observed_at)
            ).scalars()
        )


def test_a_partial_update_changes_one_instance_and_announces_the_entity_before_and_after(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    knowledge_service.create_entity("city", vehicle())
    before = knowledge_service.retrieve_entity("city", ENTITY)

    with log_context(correlation_id="req-9"):
        knowledge_service.patch_attribute("city", ENTITY, SPEED, {"value": 50.0, "datasetId": GPS})

    after = knowledge_service.retrieve_entity("city", ENTITY)
    assert after[SPEED] == [
        before[SPEED][0],  # the default instance sorts first ('@none')
        {"type": "Property", "value": 50.0, "datasetId": GPS, "unitCode": "KMH"},
        before[SPEED][2],
    ]
    assert {k: v for k, v in after.items() if k != SPEED} == {
        k: v for k, v in before.items() if k != SPEED
    }
    assert after == rebuilt_document(knowledge_store, ENTITY)

    event = ENTITIES_CHANGED.decode(orjson.dumps(outbox_events(knowledge_store)[-1]))
    assert event.tenant == "city"
    assert event.correlation_id == "req-9"  # the request's, through the log context
    assert event.payload.entity_id == ENTITY
    assert event.payload.change == "updated"
    assert event.payload.attributes == [SPEED]
    assert event.payload.entity_types == [VEHICLE]
    assert event.payload.entity == after
    assert event.payload.previous == before


def test_an_attribute_of_one_instance_is_replaced_in_the_document_as_a_rebuild_would(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    # One instance: the statement replaces its member in the stored document instead of
    # rebuilding the document from every row; the result must be the rebuild's, and a
    # second instance added later must bring the rebuild (an array) back.
    knowledge_service.create_entity("city", vehicle())
    knowledge_service.patch_attribute("city", ENTITY, NAME, {"value": "bus 28"})
    after = knowledge_service.retrieve_entity("city", ENTITY)
    assert after[NAME] == {"type": "Property", "value": "bus 28"}
    assert after == rebuilt_document(knowledge_store, ENTITY)

    knowledge_service.append_attributes(
        "city", ENTITY, {NAME: {"type": "Property", "value": "night bus", "datasetId": GPS}}
    )
    knowledge_service.patch_attribute("city", ENTITY, NAME, {"value": "bus 29"})
    after = knowledge_service.retrieve_entity("city", ENTITY)
    assert after[NAME] == [
        {"type": "Property", "value": "bus 29"},
        {"type": "Property", "value": "night bus", "datasetId": GPS},
    ]
    assert after == rebuilt_document(knowledge_store, ENTITY)


def test_each_new_value_is_a_history_instance_and_a_repeated_observed_at_is_not(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    knowledge_service.create_entity("city", vehicle())
    knowledge_service.patch_attribute("city", ENTITY, SPEED, {"value": 20.0, "datasetId": RADAR})
    knowledge_service.patch_attribute("city", ENTITY, SPEED, {"value": 21.0, "datasetId": RADAR})
    assert history_values(knowledge_store, SPEED, RADAR) == [12.0, 20.0, 21.0]

    # The default instance keeps its observedAt unless the patch moves it: same instant,
    # so the history keeps the first value of that instant (replays are idempotent).
    knowledge_service.patch_attribute("city", ENTITY, SPEED, {"value": 30.0})
    assert history_values(knowledge_store, SPEED, "@none") == [10.0]
    knowledge_service.patch_attribute(
        "city", ENTITY, SPEED, {"value": 31.0, "observedAt": "2026-11-22T10:05:00Z"}
    )
    assert history_values(knowledge_store, SPEED, "@none") == [10.0, 31.0]
    current = knowledge_service.retrieve_entity("city", ENTITY)[SPEED][0]
    assert current == {"type": "Property", "value": 31.0, "observedAt": "2026-11-22T10:05:00Z"}


def test_a_geo_property_moves_and_geo_queries_follow(knowledge_service: KnowledgeService) -> None:
    knowledge_service.create_entity("city", vehicle())
    barcelona = {"type": "Point", "coordinates": [2.17, 41.38]}
    terms = {VEHICLE: VEHICLE, "location": LOCATION}
    knowledge_service.patch_attribute("city", ENTITY, LOCATION, {"value": barcelona})

    def near(lon: float, lat: float) -> list[str]:
        query = parse_entity_query(
            {
                "type": VEHICLE,
                "georel": "near;maxDistance==1000",
                "geometry": "Point",
                "coordinates": f"[{lon},{lat}]",
            }
        )
        found = knowledge_service.query_entities("city", query, expand=terms.get)
        return [e["id"] for e in found.entities]

    assert near(2.17, 41.38) == [ENTITY]
    assert near(-3.7, 40.4) == []


def test_a_new_attribute_type_starts_afresh(knowledge_service: KnowledgeService) -> None:
    knowledge_service.create_entity("city", vehicle())
    knowledge_service.patch_attribute(
        "city", ENTITY, NAME, {"type": "Relationship", "object": "urn:ngsi-ld:Line:27"}
    )
    assert knowledge_service.retrieve_entity("city", ENTITY)[NAME] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Line:27",
    }


@pytest.mark.parametrize(
    ("entity_id", "name", "partial", "entity_type", "error", "message"),
    [
        ("urn:ngsi-ld:Vehicle:2", SPEED, {"value": 1}, None, NotFoundError, "does not exist"),
        (ENTITY, OWNER, {"value": 1}, None, NotFoundError, "has no attribute"),
        (ENTITY, SPEED, {"value": 1, "datasetId": "urn:x:other"}, None, NotFoundError, "no attr"),
        (ENTITY, SPEED, {"value": 1}, V + "Bus", NotFoundError, "is not of type"),
        (ENTITY, NAME, {"type": "Relationship"}, None, BadRequestDataError, "needs a 'object'"),
        (ENTITY, LOCATION, {"value": {"type": "Point"}}, None, BadRequestDataError, "coordinates"),
    ],
)
def test_refused_partial_updates_write_nothing(
    knowledge_service: KnowledgeService,
    knowledge_store: KnowledgeStore,
    entity_id: str,
    name: str,
    partial: dict[str, Any],
    entity_type: str | None,
    error: type[Exception],
    message: str,
) -> None:
    knowledge_service.create_entity("city", vehicle())
    before = knowledge_service.retrieve_entity("city", ENTITY, sys_attrs=True)
    events = len(outbox_events(knowledge_store))
    with pytest.raises(error, match=message):
        knowledge_service.patch_attribute("city", entity_id, name, partial, entity_type=entity_type)
    assert knowledge_service.retrieve_entity("city", ENTITY, sys_attrs=True) == before
    assert len(outbox_events(knowledge_store)) == events
    schema = knowledge_store.tenants.lookup("city")
    with knowledge_store.engine.connect() as raw:
        instances = bind_schema(raw, schema).execute(
            select(func.count()).select_from(attribute_instances)
        )
        assert instances.scalar_one() == 5  # what the creation wrote


def test_a_deleted_entity_cannot_be_patched(knowledge_service: KnowledgeService) -> None:
    knowledge_service.create_entity("city", vehicle())
    knowledge_service.delete_entity("city", ENTITY)
    with pytest.raises(NotFoundError, match="does not exist"):
        knowledge_service.patch_attribute("city", ENTITY, NAME, {"value": "x"})


def test_tenants_are_updated_apart(knowledge_service: KnowledgeService) -> None:
    for tenant in ("city", "town"):
        knowledge_service.create_entity(tenant, vehicle())
    for round_ in range(3):  # the same pooled connections serve both tenants
        knowledge_service.patch_attribute("city", ENTITY, NAME, {"value": f"city {round_}"})
        knowledge_service.patch_attribute("town", ENTITY, NAME, {"value": f"town {round_}"})
    assert knowledge_service.retrieve_entity("city", ENTITY)[NAME]["value"] == "city 2"
    assert knowledge_service.retrieve_entity("town", ENTITY)[NAME]["value"] == "town 2"
