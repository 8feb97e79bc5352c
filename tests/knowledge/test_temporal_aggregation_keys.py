"""Aggregations over several entities, attributes and datasetIds, serial and with parallel
workers allowed (cityos_knowledge.temporal.aggregation), on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from cityos_knowledge.service import (
    KnowledgeService,
    parse_entity_query,
    parse_temporal_query,
)
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.temporal import aggregation
from cityos_knowledge.temporal.reads import history, selection, window

pytestmark = pytest.mark.postgres

V = "https://example.org/vocab/"
TEMPERATURE, HUMIDITY = V + "temperature", V + "humidity"
SENSORS = ["urn:ngsi-ld:Sensor:a", "urn:ngsi-ld:Sensor:b", "urn:ngsi-ld:Sensor:c"]
DAY = datetime(2026, 3, 1, tzinfo=UTC)
DAILY = {
    "aggrMethods": "avg,max,totalCount",
    "aggrPeriodDuration": "P1D",
    "timerel": "between",
    "timeAt": "2026-03-01T00:00:00Z",
    "endTimeAt": "2026-03-03T00:00:00Z",
}


def at(hours: float) -> str:
    return (DAY + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def reading(value: float, hours: float, dataset: str | None = None) -> dict[str, Any]:
    instance: dict[str, Any] = {"type": "Property", "value": value, "observedAt": at(hours)}
    if dataset is not None:
        instance["datasetId"] = dataset
    return instance


def base(n: int) -> float:
    """Sensor n's values differ from the others' by 100 n."""
    return 100.0 * n


@pytest.fixture
def sensors(knowledge_service: KnowledgeService) -> KnowledgeService:
    """Three sensors; each has a temperature read twice a day, and a humidity measured by
    two instruments (datasetIds) every 12 hours."""
    for n, entity_id in enumerate(SENSORS):
        knowledge_service.create_temporal_entity(
            "city",
            {
                "id": entity_id,
                "type": V + "Sensor",
                TEMPERATURE: [reading(base(n) + h, h) for h in (1, 13, 25, 37)],
                HUMIDITY: [
                    *(reading(base(n) + 50 + h, h, "urn:x:probe") for h in (0, 12, 24)),
                    *(reading(base(n) + 70 + h, h, "urn:x:station") for h in (0, 24)),
                ],
            },
        )
    return knowledge_service


def expected_temperature(n: int) -> dict[str, Any]:
    days = [[at(0), at(24)], [at(24), at(48)]]
    first, second = [base(n) + 1, base(n) + 13], [base(n) + 25, base(n) + 37]
    return {
        "type": "Property",
        "avg": [[sum(first) / 2, *days[0]], [sum(second) / 2, *days[1]]],
        "max": [[max(first), *days[0]], [max(second), *days[1]]],
        "totalCount": [[2, *days[0]], [2, *days[1]]],
    }


def expected_humidity(n: int) -> list[dict[str, Any]]:
    days = [[at(0), at(24)], [at(24), at(48)]]
    probe = base(n) + 50
    station = base(n) + 70
    return [
        {
            "type": "Property",
            "datasetId": "urn:x:probe",
            "avg": [[probe + 6, *days[0]], [probe + 24, *days[1]]],
            "max": [[probe + 12, *days[0]], [probe + 24, *days[1]]],
            "totalCount": [[2, *days[0]], [1, *days[1]]],
        },
        {
            "type": "Property",
            "datasetId": "urn:x:station",
            "avg": [[station, *days[0]], [station + 24, *days[1]]],
            "max": [[station, *days[0]], [station + 24, *days[1]]],
            "totalCount": [[1, *days[0]], [1, *days[1]]],
        },
    ]


def by_dataset(value: Any) -> Any:
    return sorted(value, key=lambda item: item["datasetId"]) if isinstance(value, list) else value


def test_one_entity_keeps_each_attribute_and_dataset_apart(sensors: KnowledgeService) -> None:
    temporal = parse_temporal_query(DAILY)
    entity = sensors.retrieve_temporal("city", SENSORS[1], temporal)
    assert entity[TEMPERATURE] == expected_temperature(1)
    assert by_dataset(entity[HUMIDITY]) == expected_humidity(1)
    only = sensors.retrieve_temporal("city", SENSORS[1], temporal, attrs=[HUMIDITY])
    assert by_dataset(only[HUMIDITY]) == expected_humidity(1) and TEMPERATURE not in only


@pytest.mark.parametrize("attrs", [None, "humidity"])
def test_several_entities_each_get_their_own_periods(
    sensors: KnowledgeService, attrs: str | None
) -> None:
    query = {"type": "Sensor"} | ({"attrs": attrs} if attrs else {})
    page = sensors.query_temporal(
        "city",
        parse_entity_query(query),
        parse_temporal_query(DAILY),
        expand=lambda term: V + term,
    )
    assert [entity["id"] for entity in page.entities] == SENSORS
    for n, entity in enumerate(page.entities):
        assert by_dataset(entity[HUMIDITY]) == expected_humidity(n)
        if attrs is None:
            assert entity[TEMPERATURE] == expected_temperature(n)
        else:
            assert TEMPERATURE not in entity


def test_allowing_parallel_workers_gives_the_same_answer_and_stays_in_the_transaction(
    sensors: KnowledgeService, knowledge_store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporal = parse_temporal_query(DAILY)
    schema = knowledge_store.tenants.lookup("city")
    with knowledge_store.engine.connect() as raw:
        serial = aggregation.aggregated_values(bind_schema(raw, schema), SENSORS, None, temporal)
    # Every aggregation of more than one entity now counts as large enough for workers.
    monkeypatch.setattr(aggregation, "PARALLEL_INSTANCES", 0)
    with knowledge_store.engine.connect() as raw:
        connection = bind_schema(raw, schema)
        parallel = aggregation.aggregated_values(connection, SENSORS, None, temporal)
        assert connection.execute(text("SHOW parallel_tuple_cost")).scalar_one() == "0"
        connection.rollback()
        # The store's serial default (ADR 0017) is back for the connection's next request.
        assert connection.execute(text("SHOW max_parallel_workers_per_gather")).scalar() == "0"
        assert connection.execute(text("SHOW parallel_tuple_cost")).scalar_one() != "0"
    assert parallel == serial
    assert {n: serial[entity_id][TEMPERATURE] for n, entity_id in enumerate(SENSORS)} == {
        n: expected_temperature(n) for n in range(len(SENSORS))
    }


def test_the_planner_estimate_counts_the_instances_read(
    sensors: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    schema = knowledge_store.tenants.lookup("city")
    with knowledge_store.engine.begin() as raw:
        raw.exec_driver_sql(f'ANALYZE "{schema}".attribute_instances')
    with knowledge_store.engine.connect() as raw:
        connection = bind_schema(raw, schema)
        statement = select(history.c.entity_id).where(
            *selection(SENSORS[:2], None), *window(parse_temporal_query(DAILY))
        )
        # 2 sensors x (4 temperatures + 5 humidities) of the 27 instances; ANALYZE sampled
        # the whole table, so the estimate is close (PostgreSQL does not promise exact).
        assert 15 <= aggregation.estimated_rows(connection, statement) <= 21
