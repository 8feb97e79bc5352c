"""Linked Entity retrieval (join, joinLevel, 4.5.23) and Linked Entity projections (4.21)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
BUILDING = "urn:ngsi-ld:Building:1"
CITY = "urn:ngsi-ld:City:Paris"
COUNTRY = "urn:ngsi-ld:Country:France"


def relationship(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def seed(client: TestClient) -> None:
    for entity in (
        {"id": BUILDING, "type": "Building", "locatedAt": relationship(CITY)},
        {
            "id": CITY,
            "type": "City",
            "name": {"type": "Property", "value": "Paris"},
            "isInCountry": relationship(COUNTRY),
        },
        {
            "id": COUNTRY,
            "type": "Country",
            "name": {"type": "Property", "value": "France"},
            "description": {"type": "Property", "value": "A country"},
        },
    ):
        response = client.post(f"{API}/entities", json=entity)
        assert response.status_code == 201, response.text


def retrieve(client: TestClient, **params: str) -> Any:
    response = client.get(f"{API}/entities/{BUILDING}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_inline_puts_the_target_inside_the_relationship_level_by_level(
    ngsi_client: TestClient,
) -> None:
    seed(ngsi_client)
    one = retrieve(ngsi_client, join="inline")
    city = one["locatedAt"]["entity"]
    assert one["locatedAt"]["object"] == CITY
    assert city["id"] == CITY and city["name"]["value"] == "Paris"
    assert "entity" not in city["isInCountry"]  # joinLevel defaults to 1
    two = retrieve(ngsi_client, join="inline", joinLevel="2")
    assert two["locatedAt"]["entity"]["isInCountry"]["entity"]["id"] == COUNTRY


def test_inline_key_values_replace_the_relationship_by_the_entity(
    ngsi_client: TestClient,
) -> None:
    seed(ngsi_client)
    body = retrieve(ngsi_client, join="inline", options="keyValues")
    assert body["locatedAt"] == {
        "id": CITY,
        "type": "City",
        "name": "Paris",
        "isInCountry": COUNTRY,
    }


def test_flat_appends_each_linked_entity_once(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    body = retrieve(ngsi_client, join="flat", joinLevel="2")
    assert [entity["id"] for entity in body] == [BUILDING, CITY, COUNTRY]
    assert "entity" not in body[0]["locatedAt"]
    query = ngsi_client.get(
        f"{API}/entities", params={"type": "Building,City", "join": "flat"}
    ).json()
    assert sorted(entity["id"] for entity in query) == [BUILDING, CITY, COUNTRY]


def test_a_missing_target_leaves_the_relationship_alone(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    assert ngsi_client.delete(f"{API}/entities/{CITY}").status_code == 204
    assert "entity" not in retrieve(ngsi_client, join="inline")["locatedAt"]
    flat = retrieve(ngsi_client, join="flat")
    assert flat["id"] == BUILDING  # nothing linked: the entity itself, not an array


def test_pick_and_omit_project_each_level(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    picked = retrieve(
        ngsi_client,
        join="flat",
        joinLevel="2",
        pick="id,locatedAt{id,isInCountry{id,description}}",
    )
    assert picked == [
        {"id": BUILDING, "locatedAt": relationship(CITY)},
        {"id": CITY, "isInCountry": relationship(COUNTRY)},
        {"id": COUNTRY, "description": {"type": "Property", "value": "A country"}},
    ]
    omitted = retrieve(ngsi_client, join="inline", omit="type,locatedAt{name}")
    assert "type" not in omitted and "locatedAt" in omitted  # braces: not omitted itself
    assert set(omitted["locatedAt"]["entity"]) == {"id", "type", "isInCountry"}


def test_a_relationship_left_out_by_pick_is_not_followed(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    body = retrieve(ngsi_client, join="flat", joinLevel="2", pick="id,locatedAt{id,name}")
    assert [entity["id"] for entity in body] == [BUILDING, CITY]


@pytest.mark.parametrize(
    "params",
    [
        {"pick": "locatedAt{name}"},  # braces without join
        {"pick": "locatedAt{isInCountry{name}}", "join": "inline"},  # deeper than joinLevel
        {"join": "sideways"},
        {"join": "inline", "joinLevel": "0"},
        {"pick": "id,locatedAt{name"},
        {"pick": "id,locatedAt{{name}"},
        {"pick": "id,,name"},
        {"pick": "id;name"},
        {"pick": "id,locatedAt{}"},
        {"pick": "name", "attrs": "name"},
    ],
)
def test_bad_join_or_projection_is_bad_request_data(
    ngsi_client: TestClient, params: dict[str, str]
) -> None:
    seed(ngsi_client)
    response = ngsi_client.get(f"{API}/entities/{BUILDING}", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == ERRORS + "BadRequestData"


def test_post_query_takes_join_from_the_body(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    response = ngsi_client.post(
        f"{API}/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "Building"}], "join": "flat"},
    )
    assert response.status_code == 200, response.text
    assert [entity["id"] for entity in response.json()] == [BUILDING, CITY]
