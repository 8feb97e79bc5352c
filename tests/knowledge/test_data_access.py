"""Level-1 authorization in the knowledge facade: a ``DataScope`` applied in SQL, on PostGIS."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text

from cityos_knowledge.ingest.terms import expand_term
from cityos_knowledge.query.authorization import data_access
from cityos_knowledge.service import (
    AccessDeniedError,
    DataScope,
    KnowledgeService,
    NotFoundError,
    parse_entity_query,
    parse_temporal_query,
)
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import entities

pytestmark = pytest.mark.postgres

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
PARKING, PERSON, METER = VOCAB + "ParkingSpot", VOCAB + "Person", VOCAB + "WaterMeter"
STATUS, NAME, AGE = VOCAB + "status", VOCAB + "name", VOCAB + "age"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
OBSERVED = "2026-11-01T10:00:00Z"

#: Reads parking spots and people (only the age of people); writes parking spots only.
APP = DataScope(
    tenants=frozenset({"city"}),
    readable_types=frozenset({"ParkingSpot", "Person"}),
    writable_types=frozenset({"ParkingSpot"}),
    attributes={"Person": frozenset({"age"})},
)


def expand(term: str) -> str:
    return expand_term(term, VOCAB)


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": OBSERVED}


@pytest.fixture
def city(knowledge_service: KnowledgeService) -> KnowledgeService:
    service = knowledge_service
    service.create_entity(
        "city",
        {
            "id": "urn:ngsi-ld:ParkingSpot:1",
            "type": PARKING,
            STATUS: prop("free"),
            LOCATION: {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2, 41]}},
        },
    )
    service.create_entity(
        "city", {"id": "urn:ngsi-ld:Person:1", "type": PERSON, NAME: prop("Ana"), AGE: prop(40)}
    )
    service.create_entity(
        "city", {"id": "urn:ngsi-ld:WaterMeter:1", "type": METER, NAME: prop("m")}
    )
    service.create_entity("other", {"id": "urn:ngsi-ld:ParkingSpot:9", "type": PARKING})
    return service


def ids(page: Any) -> list[str]:
    return [entity["id"] for entity in page.entities]


def test_a_query_returns_only_readable_types_and_visible_attributes(
    city: KnowledgeService,
) -> None:
    page = city.query_entities("city", parse_entity_query({"count": "true"}), scope=APP)
    assert ids(page) == ["urn:ngsi-ld:ParkingSpot:1", "urn:ngsi-ld:Person:1"]
    assert page.count == 2
    person = page.entities[1]
    assert AGE in person and NAME not in person
    assert STATUS in page.entities[0] and LOCATION in page.entities[0]
    # Without a scope (or with an unrestricted one) everything is there.
    assert len(city.query_entities("city", parse_entity_query({})).entities) == 3


def test_q_cannot_probe_a_hidden_attribute(city: KnowledgeService) -> None:
    by_name = parse_entity_query({"q": 'name=="Ana"'})
    assert ids(city.query_entities("city", by_name, expand=expand)) == ["urn:ngsi-ld:Person:1"]
    assert ids(city.query_entities("city", by_name, expand=expand, scope=APP)) == []
    by_age = parse_entity_query({"q": "age==40"})
    assert ids(city.query_entities("city", by_age, expand=expand, scope=APP)) == [
        "urn:ngsi-ld:Person:1"
    ]


def test_an_unreadable_entity_is_not_found_and_a_visible_one_is_projected(
    city: KnowledgeService,
) -> None:
    with pytest.raises(NotFoundError):
        city.retrieve_entity("city", "urn:ngsi-ld:WaterMeter:1", scope=APP)
    person = city.retrieve_entity("city", "urn:ngsi-ld:Person:1", scope=APP, sys_attrs=True)
    assert set(person) == {"id", "type", "createdAt", "modifiedAt", AGE}


def test_another_tenant_is_refused(city: KnowledgeService) -> None:
    with pytest.raises(AccessDeniedError):
        city.query_entities("other", parse_entity_query({}), scope=APP)
    with pytest.raises(AccessDeniedError):
        city.create_entity(
            "brand-new", {"id": "urn:ngsi-ld:ParkingSpot:2", "type": PARKING}, scope=APP
        )


def test_a_refused_tenant_is_not_created(
    city: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    with pytest.raises(AccessDeniedError):
        city.create_entity(
            "brand-new", {"id": "urn:ngsi-ld:ParkingSpot:2", "type": PARKING}, scope=APP
        )
    with knowledge_store.engine.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM cityos_knowledge.tenants WHERE tenant = 'brand-new'")
        ).scalar_one()
    assert found == 0


def test_writes_need_every_type_writable_before_and_after(
    city: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    spot = "urn:ngsi-ld:ParkingSpot:1"
    city.merge_entity("city", spot, {STATUS: prop("taken")}, scope=APP)
    with pytest.raises(AccessDeniedError):
        city.create_entity("city", {"id": "urn:ngsi-ld:Person:2", "type": PERSON}, scope=APP)
    with pytest.raises(AccessDeniedError):
        city.merge_entity("city", "urn:ngsi-ld:Person:1", {AGE: prop(41)}, scope=APP)
    with pytest.raises(AccessDeniedError):  # adding a type it may not write
        city.append_attributes("city", spot, {"type": [PERSON]}, scope=APP)
    with pytest.raises(AccessDeniedError):
        city.delete_entity("city", "urn:ngsi-ld:WaterMeter:1", scope=APP)
    with pytest.raises(AccessDeniedError):
        city.delete_temporal_entity("city", "urn:ngsi-ld:Person:1", scope=APP)
    schema = knowledge_store.tenants.lookup("city")
    with knowledge_store.engine.connect() as raw:
        connection = bind_schema(raw, schema)
        rows = dict(connection.execute(select(entities.c.id, entities.c.types)).all())
    assert rows[spot] == [PARKING]
    assert "urn:ngsi-ld:Person:2" not in rows
    assert city.retrieve_entity("city", "urn:ngsi-ld:Person:1")[AGE]["value"] == 40
    assert city.retrieve_entity("city", spot)[STATUS]["value"] == "taken"


def test_a_batch_fails_only_the_forbidden_entities(city: KnowledgeService) -> None:
    result = city.batch_upsert(
        "city",
        [
            {"id": "urn:ngsi-ld:ParkingSpot:3", "type": PARKING},
            {"id": "urn:ngsi-ld:Person:3", "type": PERSON},
        ],
        scope=APP,
    )
    assert result.success == ["urn:ngsi-ld:ParkingSpot:3"]
    assert [(e.entity_id, e.error.status) for e in result.errors] == [("urn:ngsi-ld:Person:3", 403)]


def test_a_purge_touches_only_what_the_subject_may_see_and_write(city: KnowledgeService) -> None:
    everything = parse_entity_query({"attrs": "name,status,age"})
    assert city.purge_entities("city", everything, expand=expand, scope=APP) == 1
    left = ids(city.query_entities("city", parse_entity_query({})))
    assert left == ["urn:ngsi-ld:Person:1", "urn:ngsi-ld:WaterMeter:1"]


def test_discovery_lists_only_readable_types_and_visible_attributes(city: KnowledgeService) -> None:
    types = {t.type_name: t.attribute_names for t in city.entity_types("city", scope=APP)}
    assert types == {PARKING: sorted([LOCATION, STATUS]), PERSON: [AGE]}
    names = {a.name for a in city.attributes("city", scope=APP)}
    assert names == {LOCATION, STATUS, AGE}
    with pytest.raises(NotFoundError):
        city.entity_type("city", METER, scope=APP)
    with pytest.raises(NotFoundError):
        city.attribute("city", NAME, scope=APP)
    assert city.entity_type("city", PERSON, scope=APP).entity_count == 1


def test_history_leaves_hidden_attributes_in_the_database(city: KnowledgeService) -> None:
    window = parse_temporal_query({})
    person = city.retrieve_temporal("city", "urn:ngsi-ld:Person:1", window, scope=APP)
    assert set(person) == {"id", "type", AGE}
    with pytest.raises(NotFoundError):
        city.retrieve_temporal("city", "urn:ngsi-ld:WaterMeter:1", window, scope=APP)
    page = city.query_temporal(
        "city", parse_entity_query({"count": "true"}), window, expand=expand, scope=APP
    )
    assert ids(page) == ["urn:ngsi-ld:ParkingSpot:1", "urn:ngsi-ld:Person:1"]
    assert page.count == 2
    assert NAME not in page.entities[1] and AGE in page.entities[1]


def test_an_unrestricted_scope_changes_nothing() -> None:
    everything = DataScope(tenants=None, readable_types=None, writable_types=None)
    assert data_access(everything, vocabulary=VOCAB) is None
    assert data_access(None, vocabulary=VOCAB) is None
    tenant_only = data_access(
        DataScope(tenants=frozenset({"city"}), readable_types=None, writable_types=None),
        vocabulary=VOCAB,
    )
    assert tenant_only is not None and not tenant_only.filters_reads


def test_a_scoped_view_applies_its_scope_to_every_call(city: KnowledgeService) -> None:
    view = city.scoped(APP)
    assert ids(view.query_entities("city", parse_entity_query({}), expand=expand)) == [
        "urn:ngsi-ld:ParkingSpot:1",
        "urn:ngsi-ld:Person:1",
    ]
    with pytest.raises(AccessDeniedError):
        view.delete_entity("city", "urn:ngsi-ld:Person:1")
    everything = DataScope(tenants=None, readable_types=None, writable_types=None)
    assert city.scoped(everything) is city
    assert len(city.query_entities("city", parse_entity_query({})).entities) == 3


def test_a_partial_attribute_update_checks_tenant_and_type(city: KnowledgeService) -> None:
    writes_everything = DataScope(
        tenants=frozenset({"city"}), readable_types=None, writable_types=None
    )
    spot = "urn:ngsi-ld:ParkingSpot:1"
    city.patch_attribute("city", spot, STATUS, {"value": "taken"}, scope=writes_everything)
    assert city.retrieve_entity("city", spot)[STATUS]["value"] == "taken"
    with pytest.raises(AccessDeniedError):
        city.patch_attribute(
            "other", "urn:ngsi-ld:ParkingSpot:9", STATUS, {"value": "x"}, scope=writes_everything
        )
    with pytest.raises(AccessDeniedError):
        city.patch_attribute("city", "urn:ngsi-ld:Person:1", AGE, {"value": 41}, scope=APP)
    city.patch_attribute("city", spot, STATUS, {"value": "free"}, scope=APP)
    assert city.retrieve_entity("city", spot)[STATUS]["value"] == "free"
    assert city.retrieve_entity("city", "urn:ngsi-ld:Person:1")[AGE]["value"] == 40
