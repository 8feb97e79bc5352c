"""Temporal pagination: at most N instances per attribute, 206 and Content-Range (6.3.10)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos_interoperability.temporal.paging import Window, paginate
from tests.interoperability.temporal.conftest import MAX_INSTANCES

API = "/ngsi-ld/v1"


def at(hour: int) -> str:
    return f"2020-01-01T{hour:02d}:00:00Z"


def series(name: str, hours: range) -> list[dict[str, Any]]:
    return [{"type": "Property", "value": hour, "observedAt": at(hour)} for hour in hours]


def hours_of(entity: dict[str, Any], name: str) -> list[int]:
    return [int(instance["observedAt"][11:13]) for instance in entity[name]]


def test_oldest_first_cuts_every_attribute_at_the_same_instant() -> None:
    entity = {
        "id": "urn:x:1",
        "type": ["T"],
        "a": series("a", range(0, 12)),
        "b": series("b", range(2, 14)),
    }
    page = paginate([entity], Window(), 5, "normalized")
    assert hours_of(entity, "a") == [0, 1, 2, 3, 4]
    assert hours_of(entity, "b") == [2, 3, 4]  # cut at a's fifth instance, 04:00
    assert page.content_range == "date-time 2020-01-01T00:00:00.000Z-2020-01-01T04:00:00.000Z/*"


def test_newest_first_with_last_n() -> None:
    entity = {
        "id": "urn:x:1",
        "type": ["T"],
        "a": series("a", range(4, 12)),
        "b": series("b", range(0, 8)),
    }
    window = Window(last_n=8, timerel="before", time_at=datetime(2020, 1, 2, tzinfo=UTC))
    page = paginate([entity], window, 5, "normalized")
    assert hours_of(entity, "a") == [7, 8, 9, 10, 11]
    assert hours_of(entity, "b") == [7]  # b's five newest start at 03:00, a's at 07:00
    assert page.content_range == "date-time 2020-01-02T00:00:00.000Z-2020-01-01T07:00:00.000Z/8"


def test_temporal_values_and_small_answers() -> None:
    entity = {
        "id": "urn:x:1",
        "type": ["T"],
        "a": {"type": "Property", "values": [[h, at(h)] for h in range(8)]},
    }
    window = Window(timerel="after", time_at=datetime(2019, 1, 1, tzinfo=UTC))
    page = paginate([entity], window, 5, "temporalValues")
    assert [pair[0] for pair in entity["a"]["values"]] == [0, 1, 2, 3, 4]
    assert page.content_range is not None
    assert page.content_range.startswith("date-time 2019-01-01T00:00:00.000Z-2020-01-01T04:00")
    small = {"id": "urn:x:2", "type": ["T"], "a": series("a", range(3))}
    assert paginate([small], Window(), 5, "normalized").content_range is None


@pytest.mark.postgres
def test_a_client_pages_through_the_whole_history(temporal_client: TestClient) -> None:
    entity_id = f"urn:ngsi-ld:Vehicle:{uuid.uuid4().hex[:8]}"
    created = temporal_client.post(
        f"{API}/temporal/entities",
        json={
            "id": entity_id,
            "type": "Vehicle",
            "speed": series("speed", range(0, 12)),
            "fuel": series("fuel", range(12, 24)),
        },
    )
    assert created.status_code == 201, created.text
    first = temporal_client.get(f"{API}/temporal/entities/{entity_id}")
    assert first.status_code == 206
    assert first.headers["Content-Range"] == (
        "date-time 2020-01-01T00:00:00.000Z-2020-01-01T04:00:00.000Z/*"
    )
    assert hours_of(first.json(), "speed") == [0, 1, 2, 3, 4] and first.json()["fuel"] == []

    # after is an inclusive bound (4.11): each next page starts with the instances at the
    # previous page's end again, and the client drops those it already has.
    seen: dict[str, list[int]] = {"speed": [], "fuel": []}
    params: dict[str, str] = {}
    for _ in range(12):
        response = temporal_client.get(f"{API}/temporal/entities/{entity_id}", params=params)
        assert response.status_code in (200, 206)
        for name in seen:
            hours = hours_of(response.json(), name) if name in response.json() else []
            assert len(hours) <= MAX_INSTANCES
            seen[name].extend(hour for hour in hours if hour not in seen[name])
        if response.status_code == 200:
            break
        end = response.headers["Content-Range"].split("/")[0].split("Z-")[1]
        params = {"timerel": "after", "timeAt": end}
    assert seen == {"speed": list(range(0, 12)), "fuel": list(range(12, 24))}

    newest = temporal_client.get(f"{API}/temporal/entities/{entity_id}", params={"lastN": 8})
    assert newest.status_code == 206
    assert newest.headers["Content-Range"] == (
        "date-time 2020-01-01T23:00:00.000Z-2020-01-01T19:00:00.000Z/8"
    )
    assert hours_of(newest.json(), "fuel") == [19, 20, 21, 22, 23]
    assert newest.json()["speed"] == []


@pytest.mark.postgres
def test_a_temporal_query_is_cut_across_entities(temporal_client: TestClient) -> None:
    kind = f"Vehicle{uuid.uuid4().hex[:8]}"
    for number, hours in ((1, range(0, 8)), (2, range(3, 6))):
        response = temporal_client.post(
            f"{API}/temporal/entities",
            json={
                "id": f"urn:ngsi-ld:{kind}:{number}",
                "type": kind,
                "speed": series("speed", hours),
            },
        )
        assert response.status_code == 201
    response = temporal_client.get(
        f"{API}/temporal/entities", params={"type": kind, "format": "temporalValues"}
    )
    assert response.status_code == 206
    assert response.headers["Content-Range"].endswith("2020-01-01T04:00:00.000Z/*")
    speeds = {entity["id"]: [v for v, _ in entity["speed"]["values"]] for entity in response.json()}
    assert speeds == {f"urn:ngsi-ld:{kind}:1": [0, 1, 2, 3, 4], f"urn:ngsi-ld:{kind}:2": [3, 4]}
    small = temporal_client.get(f"{API}/temporal/entities", params={"type": kind, "lastN": 2})
    assert small.status_code == 200 and "Content-Range" not in small.headers
