"""The service facade's context operations on a real PostgreSQL+PostGIS."""

from __future__ import annotations

from typing import Any

import pytest

from cityos_knowledge.service import (
    NGSI_LD_NULL,
    AlreadyExistsError,
    BadRequestDataError,
    KnowledgeService,
    NonexistentTenantError,
    NotFoundError,
    NotUpdated,
    parse_entity_query,
    parse_temporal_query,
)
from cityos_knowledge.store.database import KnowledgeStore
from tests.knowledge.ingest_helpers import outbox_events

pytestmark = pytest.mark.postgres

V = "https://example.org/vocab/"
TEMPERATURE, NAME, LOCATION = V + "temperature", V + "name", "https://uri.etsi.org/ngsi-ld/location"
OWNER = V + "owner"
SENSOR = V + "Sensor"
BARCELONA = {"type": "Point", "coordinates": [2.17, 41.38]}


def sensor(number: int, **attributes: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Sensor:{number}",
        "type": SENSOR,
        TEMPERATURE: {"type": "Property", "value": 20.5, "unitCode": "CEL"},
        LOCATION: {"type": "GeoProperty", "value": BARCELONA},
    }
    entity.update(attributes)
    return entity


def changes(store: KnowledgeStore) -> list[tuple[str, str, list[str]]]:
    return [
        (e["payload"]["entity_id"], e["payload"]["change"], e["payload"]["attributes"])
        for e in outbox_events(store)
    ]


def test_an_entity_created_is_retrieved_as_it_was_given(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    assert knowledge_service.create_entity("city", sensor(1)) == "urn:ngsi-ld:Sensor:1"
    assert knowledge_service.retrieve_entity("city", "urn:ngsi-ld:Sensor:1") == {
        "id": "urn:ngsi-ld:Sensor:1",
        "type": [SENSOR],
        TEMPERATURE: {"type": "Property", "value": 20.5, "unitCode": "CEL"},
        LOCATION: {"type": "GeoProperty", "value": BARCELONA},
    }
    assert changes(knowledge_store) == [
        ("urn:ngsi-ld:Sensor:1", "created", sorted([TEMPERATURE, LOCATION]))
    ]
    with pytest.raises(AlreadyExistsError):
        knowledge_service.create_entity("city", sensor(1))
    with pytest.raises(NotFoundError):
        knowledge_service.retrieve_entity("city", "urn:ngsi-ld:Sensor:2")
    with pytest.raises(NonexistentTenantError):
        knowledge_service.retrieve_entity("elsewhere", "urn:ngsi-ld:Sensor:1")


@pytest.mark.parametrize(
    ("entity", "problem"),
    [
        ({"id": "not a uri", "type": SENSOR}, "not a URI"),
        ({"id": "urn:x:1"}, "no type"),
        (
            sensor(1, **{LOCATION: {"type": "GeoProperty", "value": {"type": "Point"}}}),
            "coordinates",
        ),
        (
            sensor(
                1,
                **{
                    LOCATION: {
                        "type": "GeoProperty",
                        "value": {"type": "Point", "coordinates": [200, 1]},
                    }
                },
            ),
            "longitude",
        ),
        (sensor(1, **{TEMPERATURE: {"type": "Property"}}), "needs a 'value'"),
        (sensor(1, **{TEMPERATURE: {"type": "Thing", "value": 1}}), "type must be one of"),
        (
            sensor(
                1,
                **{
                    TEMPERATURE: [
                        {"type": "Property", "value": 1},
                        {"type": "Property", "value": 2},
                    ]
                },
            ),
            "appears twice",
        ),
    ],
)
def test_invalid_entities_are_refused_and_nothing_is_written(
    knowledge_service: KnowledgeService,
    knowledge_store: KnowledgeStore,
    entity: dict[str, Any],
    problem: str,
) -> None:
    with pytest.raises(BadRequestDataError, match=problem):
        knowledge_service.create_entity("city", entity)
    assert outbox_events(knowledge_store) == []


def test_sys_attrs_and_projections_are_applied_in_the_query(
    knowledge_service: KnowledgeService,
) -> None:
    knowledge_service.create_entity("city", sensor(1, **{NAME: {"type": "Property", "value": "a"}}))
    knowledge_service.create_entity(
        "city", sensor(2, **{OWNER: {"type": "Relationship", "object": "urn:x:p"}})
    )
    full = knowledge_service.retrieve_entity("city", "urn:ngsi-ld:Sensor:1", sys_attrs=True)
    assert set(full) == {"id", "type", "createdAt", "modifiedAt", TEMPERATURE, LOCATION, NAME}
    assert full["createdAt"].endswith("Z") and full["modifiedAt"] >= full["createdAt"]
    assert set(full[TEMPERATURE]) == {"type", "value", "unitCode", "createdAt", "modifiedAt"}
    only = knowledge_service.retrieve_entity("city", "urn:ngsi-ld:Sensor:1", attrs=[NAME])
    assert set(only) == {"id", "type", NAME}
    picked = knowledge_service.retrieve_entity("city", "urn:ngsi-ld:Sensor:1", pick=["id", NAME])
    assert picked == {"id": "urn:ngsi-ld:Sensor:1", NAME: {"type": "Property", "value": "a"}}
    omitted = knowledge_service.retrieve_entity(
        "city", "urn:ngsi-ld:Sensor:1", omit=[TEMPERATURE, LOCATION]
    )
    assert set(omitted) == {"id", "type", NAME}


def test_replace_merge_append_update_and_deletes_follow_ngsi_ld(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    entity_id = "urn:ngsi-ld:Sensor:1"
    knowledge_service.create_entity("city", sensor(1))

    knowledge_service.merge_entity(
        "city",
        entity_id,
        {
            TEMPERATURE: {"type": "Property", "value": 22.0},
            LOCATION: NGSI_LD_NULL,
            NAME: {"type": "Property", "value": "north"},
        },
    )
    merged = knowledge_service.retrieve_entity("city", entity_id)
    assert merged[TEMPERATURE] == {"type": "Property", "value": 22.0, "unitCode": "CEL"}
    assert LOCATION not in merged and merged[NAME]["value"] == "north"

    result = knowledge_service.append_attributes(
        "city",
        entity_id,
        {
            NAME: {"type": "Property", "value": "south"},
            OWNER: {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
        },
        no_overwrite=True,
    )
    assert result.updated == [OWNER]
    assert result.not_updated == [NotUpdated(NAME, "attribute exists and noOverwrite is set")]

    result = knowledge_service.update_attributes(
        "city",
        entity_id,
        {
            NAME: {"type": "Property", "value": "east"},
            V + "absent": {"type": "Property", "value": 1},
        },
    )
    assert result.updated == [NAME]
    assert [n.attribute_name for n in result.not_updated] == [V + "absent"]

    knowledge_service.patch_attribute("city", entity_id, TEMPERATURE, {"value": 23.5})
    knowledge_service.replace_attribute(
        "city", entity_id, OWNER, {"type": "Relationship", "object": "urn:ngsi-ld:Person:2"}
    )
    current = knowledge_service.retrieve_entity("city", entity_id)
    assert current[TEMPERATURE]["value"] == 23.5 and current[TEMPERATURE]["unitCode"] == "CEL"
    assert current[OWNER]["object"] == "urn:ngsi-ld:Person:2"
    assert current[NAME]["value"] == "east"

    knowledge_service.delete_attribute("city", entity_id, OWNER)
    with pytest.raises(NotFoundError):
        knowledge_service.delete_attribute("city", entity_id, OWNER)
    with pytest.raises(NotFoundError):
        knowledge_service.patch_attribute("city", entity_id, OWNER, {"value": 1})

    knowledge_service.replace_entity(
        "city",
        entity_id,
        {"type": [SENSOR, V + "Thermometer"], NAME: {"type": "Property", "value": "only"}},
    )
    replaced = knowledge_service.retrieve_entity("city", entity_id)
    assert replaced == {
        "id": entity_id,
        "type": [SENSOR, V + "Thermometer"],
        NAME: {"type": "Property", "value": "only"},
    }

    knowledge_service.delete_entity("city", entity_id)
    with pytest.raises(NotFoundError):
        knowledge_service.retrieve_entity("city", entity_id)
    with pytest.raises(NotFoundError):
        knowledge_service.delete_entity("city", entity_id)
    knowledge_service.create_entity("city", sensor(1))  # the id can be used again

    assert [change for _, change, _ in changes(knowledge_store)] == [
        "created",
        "updated",
        "updated",
        "updated",
        "updated",
        "updated",
        "attributes_deleted",
        "replaced",
        "deleted",
        "created",
    ]
    deleted = outbox_events(knowledge_store)[-2]["payload"]
    assert deleted["entity"] is None and deleted["previous"][NAME]["value"] == "only"


def test_dataset_ids_are_separate_instances_of_one_attribute(
    knowledge_service: KnowledgeService,
) -> None:
    entity_id = "urn:ngsi-ld:Sensor:1"
    knowledge_service.create_entity(
        "city",
        sensor(
            1,
            **{
                TEMPERATURE: [
                    {"type": "Property", "value": 20},
                    {"type": "Property", "value": 21, "datasetId": "urn:ngsi-ld:Dataset:b"},
                ]
            },
        ),
    )
    values = knowledge_service.retrieve_entity("city", entity_id)[TEMPERATURE]
    assert sorted(v["value"] for v in values) == [20, 21]
    knowledge_service.delete_attribute(
        "city", entity_id, TEMPERATURE, dataset_id="urn:ngsi-ld:Dataset:b"
    )
    assert knowledge_service.retrieve_entity("city", entity_id)[TEMPERATURE] == {
        "type": "Property",
        "value": 20,
    }
    knowledge_service.append_attributes(
        "city",
        entity_id,
        {TEMPERATURE: {"type": "Property", "value": 5, "datasetId": "urn:ngsi-ld:Dataset:c"}},
    )
    knowledge_service.delete_attribute("city", entity_id, TEMPERATURE, delete_all=True)
    assert TEMPERATURE not in knowledge_service.retrieve_entity("city", entity_id)


def test_query_entities_filters_in_sql_and_counts(knowledge_service: KnowledgeService) -> None:
    for number in range(1, 7):
        place = {"type": "Point", "coordinates": [2.17 + number * 0.01, 41.38]}
        knowledge_service.create_entity(
            "city",
            sensor(
                number,
                **{
                    TEMPERATURE: {"type": "Property", "value": 10 + number},
                    LOCATION: {"type": "GeoProperty", "value": place},
                },
            ),
        )
    knowledge_service.create_entity("city", {"id": "urn:ngsi-ld:Other:1", "type": V + "Other"})

    def expand(term: str) -> str:
        return LOCATION if term == "location" else V + term

    query = parse_entity_query(
        {
            "type": "Sensor",
            "q": "temperature>12;temperature<=15",
            "georel": "near;maxDistance==4000",
            "geometry": "Point",
            "coordinates": "[2.17,41.38]",
            "count": "true",
            "limit": "2",
        }
    )
    page = knowledge_service.query_entities("city", query, expand=expand)
    # Sensors n are n hundredths of a degree (about 835 m each) east: 4 km reach n <= 4.
    assert page.count == 2
    assert [e["id"] for e in page.entities] == ["urn:ngsi-ld:Sensor:3", "urn:ngsi-ld:Sensor:4"]
    assert all(e[TEMPERATURE]["value"] > 12 for e in page.entities)
    everything = knowledge_service.query_entities(
        "city",
        parse_entity_query({"type": "Sensor", "attrs": "temperature", "limit": "100"}),
        expand=expand,
    )
    assert len(everything.entities) == 6
    assert all(set(e) == {"id", "type", TEMPERATURE} for e in everything.entities)
    hottest = knowledge_service.query_entities(
        "city",
        parse_entity_query({"type": "Sensor", "orderBy": "temperature;desc", "limit": "2"}),
        expand=expand,
        sys_attrs=True,
    )
    assert [e[TEMPERATURE]["value"] for e in hottest.entities] == [16, 15]
    assert all("createdAt" in e and "modifiedAt" in e[TEMPERATURE] for e in hottest.entities)


def test_an_invalid_pattern_is_bad_request_data_not_a_server_error(
    knowledge_service: KnowledgeService,
) -> None:
    knowledge_service.create_entity("city", sensor(1, **{NAME: {"type": "Property", "value": "x"}}))
    query = parse_entity_query({"q": 'name~="(unclosed"'})
    with pytest.raises(BadRequestDataError, match="regular expression"):
        knowledge_service.query_entities("city", query, expand=lambda t: V + t)


def test_types_and_attributes_are_discovered_from_live_entities(
    knowledge_service: KnowledgeService,
) -> None:
    knowledge_service.create_entity("city", sensor(1))
    knowledge_service.create_entity(
        "city", sensor(2, **{OWNER: {"type": "Relationship", "object": "urn:x:p"}})
    )
    knowledge_service.create_entity("city", {"id": "urn:x:gone", "type": V + "Gone"})
    knowledge_service.delete_entity("city", "urn:x:gone")

    [summary] = knowledge_service.entity_types("city")
    assert summary.type_name == SENSOR
    assert summary.attribute_names == sorted([LOCATION, OWNER, TEMPERATURE])
    info = knowledge_service.entity_type("city", SENSOR)
    assert info.entity_count == 2
    assert {(a.name, a.count, tuple(a.attribute_types)) for a in info.attribute_details} == {
        (LOCATION, 2, ("GeoProperty",)),
        (OWNER, 1, ("Relationship",)),
        (TEMPERATURE, 2, ("Property",)),
    }
    with pytest.raises(NotFoundError):
        knowledge_service.entity_type("city", V + "Gone")
    owner = knowledge_service.attribute("city", OWNER)
    assert (owner.attribute_count, owner.attribute_types, owner.type_names) == (
        1,
        ["Relationship"],
        [SENSOR],
    )
    assert [a.name for a in knowledge_service.attributes("city")] == sorted(
        [LOCATION, OWNER, TEMPERATURE]
    )


def test_batch_operations_report_each_entity(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    created = knowledge_service.batch_create(
        "city", [sensor(1), sensor(2), sensor(1), {"id": "bad id", "type": SENSOR}]
    )
    assert created.success == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    assert created.created == created.success
    assert [(e.entity_id, type(e.error).__name__) for e in created.errors] == [
        ("urn:ngsi-ld:Sensor:1", "AlreadyExistsError"),
        ("bad id", "BadRequestDataError"),
    ]

    upserted = knowledge_service.batch_upsert(
        "city",
        [sensor(2, **{NAME: {"type": "Property", "value": "n"}}), sensor(3)],
        replace=False,
    )
    assert upserted.success == ["urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Sensor:3"]
    assert upserted.created == ["urn:ngsi-ld:Sensor:3"]
    assert knowledge_service.retrieve_entity("city", "urn:ngsi-ld:Sensor:2")[NAME]["value"] == "n"

    updated = knowledge_service.batch_update(
        "city",
        [
            {"id": "urn:ngsi-ld:Sensor:1", NAME: {"type": "Property", "value": "m"}},
            {"id": "urn:ngsi-ld:Sensor:9", NAME: {"type": "Property", "value": "m"}},
        ],
    )
    assert updated.success == ["urn:ngsi-ld:Sensor:1"]
    assert isinstance(updated.errors[0].error, NotFoundError)

    merged = knowledge_service.batch_merge(
        "city", [{"id": "urn:ngsi-ld:Sensor:3", TEMPERATURE: {"type": "Property", "value": 1}}]
    )
    assert merged.success == ["urn:ngsi-ld:Sensor:3"]

    deleted = knowledge_service.batch_delete("city", ["urn:ngsi-ld:Sensor:3", "urn:x:none"])
    assert deleted.success == ["urn:ngsi-ld:Sensor:3"]
    assert [e.entity_id for e in deleted.errors] == ["urn:x:none"]
    # Failed entities left no trace: one created event per created entity, none for errors.
    assert [(i, c) for i, c, _ in changes(knowledge_store) if c == "created"] == [
        ("urn:ngsi-ld:Sensor:1", "created"),
        ("urn:ngsi-ld:Sensor:2", "created"),
        ("urn:ngsi-ld:Sensor:3", "created"),
    ]


def test_purge_deletes_every_entity_a_query_selects(knowledge_service: KnowledgeService) -> None:
    for number in range(1, 4):
        knowledge_service.create_entity("city", sensor(number))
    knowledge_service.create_entity("city", {"id": "urn:x:keep", "type": V + "Other"})
    purged = knowledge_service.purge_entities(
        "city", parse_entity_query({"type": "Sensor"}), expand=lambda t: V + t
    )
    assert purged == 3
    [left] = knowledge_service.entity_types("city")
    assert left.type_name == V + "Other"


def test_a_tenant_never_sees_another_tenants_data(knowledge_service: KnowledgeService) -> None:
    knowledge_service.create_entity("city-a", sensor(1))
    knowledge_service.create_entity(
        "city-b", sensor(2, **{OWNER: {"type": "Relationship", "object": "urn:x:b"}})
    )
    everything = parse_entity_query({"type": "Sensor", "limit": "100", "count": "true"})
    page_a = knowledge_service.query_entities("city-a", everything, expand=lambda t: V + t)
    assert [e["id"] for e in page_a.entities] == ["urn:ngsi-ld:Sensor:1"] and page_a.count == 1
    with pytest.raises(NotFoundError):
        knowledge_service.retrieve_entity("city-a", "urn:ngsi-ld:Sensor:2")
    with pytest.raises(NotFoundError):
        knowledge_service.delete_entity("city-a", "urn:ngsi-ld:Sensor:2")
    assert OWNER not in knowledge_service.entity_types("city-a")[0].attribute_names
    # The same id may exist in both tenants independently.
    knowledge_service.create_entity("city-b", sensor(1))
    assert knowledge_service.retrieve_entity("city-b", "urn:ngsi-ld:Sensor:1")
    with pytest.raises(NonexistentTenantError):
        knowledge_service.query_entities("city-never-written", everything)
    # The default tenant is implicit: empty, never 404, even before anything is written.
    assert knowledge_service.query_entities(None, everything).entities == []


def test_a_write_reaching_new_history_months_mid_transaction_gets_their_partitions(
    knowledge_service: KnowledgeService,
) -> None:
    # The first entity's instance goes into a partition created for it; the second needs
    # another one while the batch transaction already holds its lock on the history table.
    old = [
        sensor(n, **{TEMPERATURE: {"type": "Property", "value": n, "observedAt": at}})
        for n, at in ((1, "2019-01-15T10:00:00Z"), (2, "2018-06-15T10:00:00Z"))
    ]
    result = knowledge_service.batch_create("city", old)
    assert result.success == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    history = knowledge_service.retrieve_temporal(
        "city", "urn:ngsi-ld:Sensor:2", parse_temporal_query({})
    )
    assert [i["observedAt"] for i in history[TEMPERATURE]] == ["2018-06-15T10:00:00Z"]
