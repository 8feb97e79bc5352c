"""The service facade's temporal operations on a real PostgreSQL+PostGIS (no TimescaleDB)."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cityos_knowledge.service import (
    BadRequestDataError,
    KnowledgeService,
    NotAvailableOnThisDatabaseError,
    NotFoundError,
    TemporalQuery,
    parse_entity_query,
    parse_temporal_query,
)

pytestmark = pytest.mark.postgres

V = "https://example.org/vocab/"
TEMPERATURE, STATUS = V + "temperature", V + "status"
ENTITY = "urn:ngsi-ld:Sensor:1"
DAY = datetime(2026, 3, 1, tzinfo=UTC)


def at(hours: float) -> str:
    return (DAY + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


#: Two days of readings every 6 hours: 10, 11, ... 17 °C; a status that changes twice.
VALUES = [10.0 + n for n in range(8)]


@pytest.fixture
def history(knowledge_service: KnowledgeService) -> KnowledgeService:
    knowledge_service.create_temporal_entity(
        "city",
        {
            "id": ENTITY,
            "type": V + "Sensor",
            TEMPERATURE: [
                {"type": "Property", "value": value, "observedAt": at(6 * n), "unitCode": "CEL"}
                for n, value in enumerate(VALUES)
            ],
            STATUS: [
                {"type": "Property", "value": "ok", "observedAt": at(0)},
                {"type": "Property", "value": "ok", "observedAt": at(12)},
                {"type": "Property", "value": "fault", "observedAt": at(30)},
            ],
        },
    )
    return knowledge_service


def temporal(**parameters: str) -> TemporalQuery:
    return parse_temporal_query(parameters)


def test_temporal_entities_keep_every_instance_and_the_latest_as_current_state(
    history: KnowledgeService,
) -> None:
    entity = history.retrieve_temporal("city", ENTITY, temporal())
    assert entity["type"] == [V + "Sensor"]
    assert [i["value"] for i in entity[TEMPERATURE]] == [10, 11, 12, 13, 14, 15, 16, 17]
    first = entity[TEMPERATURE][0]
    assert first["observedAt"] == "2026-03-01T00:00:00Z" and first["unitCode"] == "CEL"
    assert first["instanceId"].startswith("urn:ngsi-ld:attribute:instance:")
    current = history.retrieve_entity("city", ENTITY)
    assert current[TEMPERATURE]["value"] == 17 and current[STATUS]["value"] == "fault"


def test_timerel_windows_last_n_and_attrs(history: KnowledgeService) -> None:
    before = history.retrieve_temporal(
        "city", ENTITY, temporal(timerel="before", timeAt=at(12)), attrs=[TEMPERATURE]
    )
    assert [i["value"] for i in before[TEMPERATURE]] == [10, 11]
    assert STATUS not in before
    # 4.11: after is an inclusive bound, before an exclusive one (16 is at exactly 36 h).
    after = history.retrieve_temporal("city", ENTITY, temporal(timerel="after", timeAt=at(36)))
    assert [i["value"] for i in after[TEMPERATURE]] == [16, 17]
    until = history.retrieve_temporal("city", ENTITY, temporal(timerel="before", timeAt=at(36)))
    assert [i["value"] for i in until[TEMPERATURE]][-1] == 15
    between = history.retrieve_temporal(
        "city", ENTITY, temporal(timerel="between", timeAt=at(6), endTimeAt=at(18))
    )
    assert [i["value"] for i in between[TEMPERATURE]] == [11, 12]
    assert [i["value"] for i in between[STATUS]] == ["ok"]
    last = history.retrieve_temporal("city", ENTITY, temporal(lastN="3"))
    assert [i["value"] for i in last[TEMPERATURE]] == [15, 16, 17]
    assert [i["value"] for i in last[STATUS]] == ["ok", "ok", "fault"]


def test_deleting_an_attribute_is_recorded_and_read_with_timeproperty_deleted_at(
    history: KnowledgeService,
) -> None:
    history.delete_attribute("city", ENTITY, STATUS, dataset_id=None, delete_all=False)
    [deletion] = history.retrieve_temporal("city", ENTITY, temporal(timeproperty="deletedAt"))[
        STATUS
    ]
    assert deletion["value"] == "urn:ngsi-ld:null"
    assert deletion["deletedAt"].endswith("Z") and "observedAt" not in deletion
    assert TEMPERATURE not in history.retrieve_temporal(
        "city", ENTITY, temporal(timeproperty="deletedAt")
    )
    # Reads on the other time properties leave recorded deletions out.
    evolution = history.retrieve_temporal("city", ENTITY, temporal())
    assert [i["value"] for i in evolution[STATUS]] == ["ok", "ok", "fault"]


def test_an_instance_at_a_stored_instant_replaces_it(history: KnowledgeService) -> None:
    # Temperatures were 10 at 0 h and 17 at 42 h (the latest, the current state).
    history.create_temporal_entity(
        "city",
        {
            "id": ENTITY,
            "type": V + "Sensor",
            TEMPERATURE: [
                {"type": "Property", "value": 9.5, "observedAt": at(0)},
                {"type": "Property", "value": 16.5, "observedAt": at(42)},
            ],
        },
    )
    evolution = history.retrieve_temporal("city", ENTITY, temporal())
    values = [i["value"] for i in evolution[TEMPERATURE]]
    assert values == [9.5, 11, 12, 13, 14, 15, 16, 16.5]
    assert history.retrieve_entity("city", ENTITY)[TEMPERATURE]["value"] == 16.5


def test_a_null_instance_records_a_deletion_and_clears_the_current_state_when_latest(
    history: KnowledgeService,
) -> None:
    null = "urn:ngsi-ld:null"
    # An older deletion stays in the history only: the current state is newer.
    history.append_temporal_attributes(
        "city", ENTITY, {STATUS: [{"type": "Property", "value": null, "observedAt": at(6)}]}
    )
    assert history.retrieve_entity("city", ENTITY)[STATUS]["value"] == "fault"
    # The latest instance is a deletion: the attribute leaves the current state.
    history.append_temporal_attributes(
        "city", ENTITY, {STATUS: [{"type": "Property", "value": null, "observedAt": at(40)}]}
    )
    assert STATUS not in history.retrieve_entity("city", ENTITY)
    assert TEMPERATURE in history.retrieve_entity("city", ENTITY)
    evolution = history.retrieve_temporal("city", ENTITY, temporal())
    assert [i["value"] for i in evolution[STATUS]] == ["ok", null, "ok", "fault", null]


def test_an_instance_limit_reads_only_the_first_or_the_newest_instances(
    history: KnowledgeService,
) -> None:
    first = history.retrieve_temporal("city", ENTITY, replace(temporal(), instance_limit=3))
    assert [i["value"] for i in first[TEMPERATURE]] == [10, 11, 12]
    assert [i["value"] for i in first[STATUS]] == ["ok", "ok", "fault"]
    newest = history.retrieve_temporal(
        "city", ENTITY, replace(temporal(lastN="5"), instance_limit=2)
    )
    assert [i["value"] for i in newest[TEMPERATURE]] == [16, 17]
    windowed = history.retrieve_temporal(
        "city",
        ENTITY,
        replace(temporal(timerel="after", timeAt=at(12)), instance_limit=2),
        representation="temporalValues",
    )
    assert [pair[0] for pair in windowed[TEMPERATURE]["values"]] == [12, 13]


def test_temporal_values_representation(history: KnowledgeService) -> None:
    entity = history.retrieve_temporal(
        "city", ENTITY, temporal(lastN="2"), representation="temporalValues"
    )
    assert entity[STATUS] == {
        "type": "Property",
        "values": [["ok", "2026-03-01T12:00:00Z"], ["fault", "2026-03-02T06:00:00Z"]],
    }


def test_daily_aggregation_of_every_method(history: KnowledgeService) -> None:
    entity = history.retrieve_temporal(
        "city",
        ENTITY,
        temporal(
            aggrMethods="totalCount,distinctCount,sum,avg,min,max,stddev,sumsq",
            aggrPeriodDuration="P1D",
            timerel="between",
            timeAt=at(0),
            endTimeAt=at(48),
        ),
        attrs=[TEMPERATURE, STATUS],
    )
    days = [VALUES[:4], VALUES[4:]]
    aggregated = entity[TEMPERATURE]
    spans = [[at(0), at(24)], [at(24), at(48)]]
    assert aggregated["type"] == "Property"
    assert aggregated["totalCount"] == [[4, *spans[0]], [4, *spans[1]]]
    assert aggregated["avg"] == [[statistics.mean(d), *s] for d, s in zip(days, spans, strict=True)]
    assert aggregated["min"] == [[min(d), *s] for d, s in zip(days, spans, strict=True)]
    assert aggregated["max"] == [[max(d), *s] for d, s in zip(days, spans, strict=True)]
    assert aggregated["sum"] == [[sum(d), *s] for d, s in zip(days, spans, strict=True)]
    assert aggregated["sumsq"] == [
        [sum(v * v for v in d), *s] for d, s in zip(days, spans, strict=True)
    ]
    for (value, *_), day in zip(aggregated["stddev"], days, strict=True):
        assert math.isclose(value, statistics.stdev(day))
    # Text values are counted, not summed: status was ok, ok on day one, fault on day two.
    assert entity[STATUS]["distinctCount"] == [[1, *spans[0]], [1, *spans[1]]]
    assert entity[STATUS]["totalCount"] == [[2, *spans[0]], [1, *spans[1]]]
    assert entity[STATUS]["avg"] == []


def test_periods_start_at_the_oldest_instance_without_a_lower_bound(
    knowledge_service: KnowledgeService,
) -> None:
    entity_id = "urn:ngsi-ld:Sensor:offset"
    knowledge_service.create_temporal_entity(
        "city",
        {
            "id": entity_id,
            "type": V + "Sensor",
            TEMPERATURE: [
                {"type": "Property", "value": value, "observedAt": at(hours)}
                for value, hours in ((1, 0.05), (3, 0.5), (5, 1.1), (7, 2.2))
            ],
        },
    )
    for query in (
        temporal(aggrMethods="avg", aggrPeriodDuration="PT1H"),
        temporal(aggrMethods="avg", aggrPeriodDuration="PT1H", timerel="before", timeAt=at(10)),
    ):
        entity = knowledge_service.retrieve_temporal("city", entity_id, query)
        # 4.5.19: the first period starts where the query's range does, the oldest instance.
        assert entity[TEMPERATURE]["avg"] == [
            [2, at(0.05), at(1.05)],
            [5, at(1.05), at(2.05)],
            [7, at(2.05), at(3.05)],
        ]


def test_aggregation_over_the_whole_window_and_by_the_hour(history: KnowledgeService) -> None:
    whole = history.retrieve_temporal(
        "city", ENTITY, temporal(aggrMethods="max,totalCount"), attrs=[TEMPERATURE]
    )
    assert whole[TEMPERATURE]["max"] == [[17, at(0), at(42)]]
    hourly = history.retrieve_temporal(
        "city",
        ENTITY,
        temporal(aggrMethods="avg", aggrPeriodDuration="PT6H", timerel="after", timeAt=at(29)),
        attrs=[TEMPERATURE],
    )
    # Periods start at timeAt: 29-35 h holds the 30 h reading, 35-41 h the 36 h one...
    assert hourly[TEMPERATURE]["avg"] == [
        [15, at(29), at(35)],
        [16, at(35), at(41)],
        [17, at(41), at(47)],
    ]
    monthly = history.retrieve_temporal(
        "city",
        ENTITY,
        temporal(aggrMethods="totalCount", aggrPeriodDuration="P1M"),
        attrs=[TEMPERATURE],
    )
    assert monthly[TEMPERATURE]["totalCount"] == [
        [8, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"]
    ]


def test_time_property_created_at_windows_on_the_write_time(history: KnowledgeService) -> None:
    written = history.retrieve_temporal(
        "city",
        ENTITY,
        temporal(timerel="after", timeAt="2020-01-01T00:00:00Z", timeproperty="createdAt"),
    )
    assert len(written[TEMPERATURE]) == 8
    nothing = history.retrieve_temporal(
        "city", ENTITY, temporal(timerel="before", timeAt=at(0), timeproperty="createdAt")
    )
    assert TEMPERATURE not in nothing


def test_instances_are_modified_and_deleted_one_by_one(history: KnowledgeService) -> None:
    instances = history.retrieve_temporal("city", ENTITY, temporal())[TEMPERATURE]
    second = instances[1]["instanceId"]
    history.modify_attribute_instance(
        "city", ENTITY, TEMPERATURE, second, {"type": "Property", "value": 99.5}
    )
    history.delete_attribute_instance("city", ENTITY, TEMPERATURE, instances[0]["instanceId"])
    after = history.retrieve_temporal("city", ENTITY, temporal(), sys_attrs=True)[TEMPERATURE]
    assert [i["value"] for i in after][:2] == [99.5, 12]
    assert "modifiedAt" in after[0] and "modifiedAt" not in after[1]
    with pytest.raises(NotFoundError):
        history.delete_attribute_instance("city", ENTITY, TEMPERATURE, second.replace("-", "0", 1))
    with pytest.raises(BadRequestDataError):
        history.modify_attribute_instance(
            "city", ENTITY, TEMPERATURE, second, {"observedAt": "2030-01-01T00:00:00Z"}
        )


def test_attribute_and_entity_histories_are_deleted(history: KnowledgeService) -> None:
    history.delete_temporal_attribute("city", ENTITY, STATUS)
    assert STATUS not in history.retrieve_temporal("city", ENTITY, temporal())
    with pytest.raises(NotFoundError):
        history.delete_temporal_attribute("city", ENTITY, STATUS)
    history.delete_entity("city", ENTITY)  # the context entity goes, its history stays
    assert len(history.retrieve_temporal("city", ENTITY, temporal())[TEMPERATURE]) == 8
    history.delete_temporal_entity("city", ENTITY)
    with pytest.raises(NotFoundError):
        history.retrieve_temporal("city", ENTITY, temporal())


def test_appending_instances_to_an_existing_entity(history: KnowledgeService) -> None:
    history.append_temporal_attributes(
        "city",
        ENTITY,
        {TEMPERATURE: [{"type": "Property", "value": 30, "observedAt": at(60)}]},
    )
    assert history.retrieve_entity("city", ENTITY)[TEMPERATURE]["value"] == 30
    with pytest.raises(NotFoundError):
        history.append_temporal_attributes(
            "city", "urn:x:none", {TEMPERATURE: [{"type": "Property", "value": 1}]}
        )
    assert history.create_temporal_entity("city", {"id": ENTITY, "type": V + "Sensor"}) is False


def test_temporal_query_selects_entities_by_type(history: KnowledgeService) -> None:
    history.create_temporal_entity(
        "city",
        {
            "id": "urn:x:other",
            "type": V + "Other",
            TEMPERATURE: [{"type": "Property", "value": 1, "observedAt": at(1)}],
        },
    )
    page = history.query_temporal(
        "city",
        parse_entity_query({"type": "Sensor", "count": "true"}),
        temporal(timerel="before", timeAt=at(7), lastN="1"),
        expand=lambda term: V + term,
    )
    assert page.count == 1
    [entity] = page.entities
    assert entity["id"] == ENTITY and [i["value"] for i in entity[TEMPERATURE]] == [11]


def test_toolkit_analytics_say_clearly_they_are_not_available(history: KnowledgeService) -> None:
    window = temporal()
    for call in (
        lambda: history.time_weighted_average("city", ENTITY, TEMPERATURE, window),
        lambda: history.percentiles("city", ENTITY, TEMPERATURE, window, [0.5]),
        lambda: history.counter("city", ENTITY, TEMPERATURE, window),
        lambda: history.downsample("city", ENTITY, TEMPERATURE, window, 10),
    ):
        with pytest.raises(NotAvailableOnThisDatabaseError, match="not available on this database"):
            call()


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"timerel": "during", "timeAt": at(0)}, "timerel must be"),
        ({"timerel": "before"}, "needs timeAt"),
        ({"timerel": "between", "timeAt": at(0)}, "needs endTimeAt"),
        ({"timerel": "between", "timeAt": at(5), "endTimeAt": at(1)}, "after timeAt"),
        ({"timerel": "after", "timeAt": "yesterday"}, "ISO 8601"),
        ({"timerel": "after", "timeAt": "2020-08-01"}, "DateTime"),
        ({"lastN": "0"}, "positive"),
        ({"aggrMethods": "median"}, "unknown aggrMethods"),
        ({"aggrMethods": "avg", "aggrPeriodDuration": "1 day"}, "not an ISO 8601 duration"),
        ({"aggrMethods": "avg", "aggrPeriodDuration": "P1MT1H"}, "mixes months"),
        ({"aggrMethods": "avg", "aggrPeriodDuration": "P9999999999D"}, "longer than 10,000"),
        ({"aggrMethods": "avg", "aggrPeriodDuration": "PT99999999999999999999H"}, "longer than"),
        ({"aggrMethods": "avg", "aggrPeriodDuration": "P10001Y"}, "longer than 10,000"),
        ({"aggrPeriodDuration": "P1D"}, "needs aggrMethods"),
        ({"timeproperty": "expiresAt"}, "timeproperty"),
    ],
)
def test_malformed_temporal_parameters_are_bad_request_data(
    parameters: dict[str, str], problem: str
) -> None:
    with pytest.raises(BadRequestDataError, match=problem):
        parse_temporal_query(parameters)
