"""Aggregations over any whole number of months or years (``aggrPeriodDuration`` P3M, P6M,
P2Y…) on a real PostgreSQL: calendar periods on a grid of months counted from January of
year 0 (UTC), so quarters, half-years and even years."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityos_knowledge.service import (
    BadRequestDataError,
    KnowledgeService,
    parse_entity_query,
    parse_temporal_query,
)

pytestmark = pytest.mark.postgres

V = "https://example.org/vocab/"
TEMPERATURE = V + "temperature"
SENSORS = ["urn:ngsi-ld:Sensor:q1", "urn:ngsi-ld:Sensor:q2"]


def text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def readings(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
    """A reading every ``step`` from ``start`` (included) to ``end`` (excluded), with values
    that vary within each month."""
    moments: list[tuple[datetime, float]] = []
    moment, n = start, 0
    while moment < end:
        moments.append((moment, float(n % 23) + 0.25 * (n % 4)))
        moment, n = moment + step, n + 1
    return moments


def instances(data: list[tuple[datetime, float]], offset: float = 0.0) -> list[dict[str, Any]]:
    return [
        {"type": "Property", "value": value + offset, "observedAt": text(moment)}
        for moment, value in data
    ]


def expected(
    data: list[tuple[datetime, float]], period_of: Callable[[datetime], tuple[datetime, datetime]]
) -> dict[str, list[list[Any]]]:
    """avg/min/max/totalCount per period, computed here from the readings."""
    groups: dict[tuple[datetime, datetime], list[float]] = {}
    for moment, value in data:
        groups.setdefault(period_of(moment), []).append(value)
    answer: dict[str, list[list[Any]]] = {"avg": [], "min": [], "max": [], "totalCount": []}
    for (start, end), values in sorted(groups.items()):
        bounds = [text(start), text(end)]
        answer["avg"].append([pytest.approx(sum(values) / len(values)), *bounds])
        answer["min"].append([min(values), *bounds])
        answer["max"].append([max(values), *bounds])
        answer["totalCount"].append([len(values), *bounds])
    return answer


def quarter(moment: datetime) -> tuple[datetime, datetime]:
    first = (moment.month - 1) // 3 * 3 + 1
    start = datetime(moment.year, first, 1, tzinfo=UTC)
    end = datetime(moment.year + (first + 3 > 12), (first + 2) % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month(moment: datetime) -> tuple[datetime, datetime]:
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    end = datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def two_years(moment: datetime) -> tuple[datetime, datetime]:
    year = moment.year - moment.year % 2
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 2, 1, 1, tzinfo=UTC)


#: 2025, a reading every 3 days at 06:00 (122 instances).
YEAR = readings(
    datetime(2025, 1, 1, 6, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=3)
)
#: mid-2023 to early 2026, a reading every 10 days.
YEARS = readings(
    datetime(2023, 6, 15, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), timedelta(days=10)
)
METHODS = "avg,min,max,totalCount"


def aggregate(service: KnowledgeService, entity_id: str, **parameters: str) -> Any:
    query = parse_temporal_query({"aggrMethods": METHODS, **parameters})
    return service.retrieve_temporal("city", entity_id, query)[TEMPERATURE]


@pytest.fixture
def year(knowledge_service: KnowledgeService) -> KnowledgeService:
    knowledge_service.create_temporal_entity(
        "city", {"id": SENSORS[0], "type": V + "Sensor", TEMPERATURE: instances(YEAR)}
    )
    return knowledge_service


def test_p3m_over_a_year_gives_its_four_quarters(year: KnowledgeService) -> None:
    quarters = aggregate(year, SENSORS[0], aggrPeriodDuration="P3M")
    assert {"type": "Property", **expected(YEAR, quarter)} == quarters
    assert [period[1:] for period in quarters["totalCount"]] == [
        ["2025-01-01T00:00:00Z", "2025-04-01T00:00:00Z"],
        ["2025-04-01T00:00:00Z", "2025-07-01T00:00:00Z"],
        ["2025-07-01T00:00:00Z", "2025-10-01T00:00:00Z"],
        ["2025-10-01T00:00:00Z", "2026-01-01T00:00:00Z"],
    ]
    assert sum(count for count, *_ in quarters["totalCount"]) == len(YEAR)


def test_p1m_and_p1y_periods_are_calendar_months_and_years(year: KnowledgeService) -> None:
    months = aggregate(year, SENSORS[0], aggrPeriodDuration="P1M")
    assert {"type": "Property", **expected(YEAR, month)} == months
    assert len(months["avg"]) == 12
    whole = aggregate(year, SENSORS[0], aggrPeriodDuration="P1Y")
    assert whole["totalCount"] == [[len(YEAR), "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]]
    # P12M is the same period as P1Y.
    assert aggregate(year, SENSORS[0], aggrPeriodDuration="P12M") == whole


def test_a_time_window_selects_instances_but_keeps_the_calendar_grid(
    year: KnowledgeService,
) -> None:
    """As with P1M, the periods stay on the calendar: a lower bound in mid-quarter keeps
    the quarter's start, and the period counts only the instances in the window."""
    time_at = datetime(2025, 5, 10, tzinfo=UTC)
    end_time_at = datetime(2025, 8, 20, tzinfo=UTC)
    window = [(moment, value) for moment, value in YEAR if time_at <= moment < end_time_at]
    quarters = aggregate(
        year,
        SENSORS[0],
        aggrPeriodDuration="P3M",
        timerel="between",
        timeAt=text(time_at),
        endTimeAt=text(end_time_at),
    )
    assert {"type": "Property", **expected(window, quarter)} == quarters
    assert [period[1] for period in quarters["avg"]] == [
        "2025-04-01T00:00:00Z",
        "2025-07-01T00:00:00Z",
    ]
    before = aggregate(
        year, SENSORS[0], aggrPeriodDuration="P6M", timerel="before", timeAt=text(time_at)
    )
    early = [(moment, value) for moment, value in YEAR if moment < time_at]
    assert before["totalCount"] == [[len(early), "2025-01-01T00:00:00Z", "2025-07-01T00:00:00Z"]]


def test_p2y_periods_start_in_even_years(knowledge_service: KnowledgeService) -> None:
    knowledge_service.create_temporal_entity(
        "city", {"id": SENSORS[1], "type": V + "Sensor", TEMPERATURE: instances(YEARS)}
    )
    periods = aggregate(knowledge_service, SENSORS[1], aggrPeriodDuration="P2Y")
    assert {"type": "Property", **expected(YEARS, two_years)} == periods
    assert [period[1:] for period in periods["totalCount"]] == [
        ["2022-01-01T00:00:00Z", "2024-01-01T00:00:00Z"],
        ["2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z"],
        ["2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
    ]
    # 18 months from January of year 0: 2022 * 12 months is a multiple of 18.
    eighteen = aggregate(knowledge_service, SENSORS[1], aggrPeriodDuration="P1Y6M")
    assert [period[1:] for period in eighteen["totalCount"]] == [
        ["2022-01-01T00:00:00Z", "2023-07-01T00:00:00Z"],
        ["2023-07-01T00:00:00Z", "2025-01-01T00:00:00Z"],
        ["2025-01-01T00:00:00Z", "2026-07-01T00:00:00Z"],
    ]
    assert sum(count for count, *_ in eighteen["totalCount"]) == len(YEARS)


def test_a_period_longer_than_a_datetime_holds_is_reported_within_its_bounds(
    year: KnowledgeService,
) -> None:
    periods = aggregate(year, SENSORS[0], aggrPeriodDuration="P10000Y")
    assert periods["totalCount"] == [
        [len(YEAR), "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"]
    ]


def test_several_entities_each_get_their_quarters(knowledge_service: KnowledgeService) -> None:
    for n, entity_id in enumerate(SENSORS):
        knowledge_service.create_temporal_entity(
            "city",
            {"id": entity_id, "type": V + "Sensor", TEMPERATURE: instances(YEAR, 100.0 * n)},
        )
    page = knowledge_service.query_temporal(
        "city",
        parse_entity_query({"type": "Sensor"}),
        parse_temporal_query({"aggrMethods": METHODS, "aggrPeriodDuration": "P3M"}),
        expand=lambda term: V + term,
    )
    assert [entity["id"] for entity in page.entities] == SENSORS
    for n, entity in enumerate(page.entities):
        shifted = [(moment, value + 100.0 * n) for moment, value in YEAR]
        assert entity[TEMPERATURE] == {"type": "Property", **expected(shifted, quarter)}


def test_months_mixed_with_days_or_time_stay_refused() -> None:
    for duration in ("P1M15D", "P1YT1H", "P3MT0.5S"):
        with pytest.raises(BadRequestDataError, match="mixes months"):
            parse_temporal_query({"aggrMethods": "avg", "aggrPeriodDuration": duration})
