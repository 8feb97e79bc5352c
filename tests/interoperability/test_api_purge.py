"""Purge Entities (DELETE /entities, 5.6.21): its guard against wide deletes, keep and drop."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def building(number: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Building:{number}",
        "type": "Building",
        "name": {"type": "Property", "value": f"Tower {number}"},
        "height": {"type": "Property", "value": 10 * number},
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
    }


def seed(client: TestClient, *numbers: int) -> None:
    for number in numbers:
        response = client.post(f"{API}/entities", json=building(number))
        assert response.status_code == 201, response.text


def ids(client: TestClient) -> list[str]:
    response = client.get(f"{API}/entities", params={"type": "Building"})
    return sorted(entity["id"] for entity in response.json())


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"id": "urn:ngsi-ld:Building:1"},
        {"idPattern": ".*"},
        {"attrs": "createdAt"},
        {"q": 'modifiedAt>"2020-01-01T00:00:00Z"'},
        {"type": "Building", "keep": "name", "drop": "height"},
        {"type": "Building", "attrs": "owner{name}"},
    ],
)
def test_a_too_wide_or_contradictory_purge_is_refused_and_deletes_nothing(
    ngsi_client: TestClient, params: dict[str, str]
) -> None:
    seed(ngsi_client, 1)
    response = ngsi_client.delete(f"{API}/entities", params=params)
    assert response.status_code == 400
    assert response.json()["type"] == ERRORS + "BadRequestData"
    assert ids(ngsi_client) == ["urn:ngsi-ld:Building:1"]


def test_id_with_type_and_local_scope_qualify(ngsi_client: TestClient) -> None:
    seed(ngsi_client, 1, 2, 3)
    one = {"id": "urn:ngsi-ld:Building:1", "type": "Building"}
    assert ngsi_client.delete(f"{API}/entities", params=one).status_code == 204
    assert ids(ngsi_client) == ["urn:ngsi-ld:Building:2", "urn:ngsi-ld:Building:3"]
    by_q = ngsi_client.delete(f"{API}/entities", params={"q": 'name=="Tower 2"'})
    assert by_q.status_code == 204
    assert ids(ngsi_client) == ["urn:ngsi-ld:Building:3"]
    assert ngsi_client.delete(f"{API}/entities", params={"local": "true"}).status_code == 204
    assert ids(ngsi_client) == []


def test_drop_and_keep_delete_attributes_but_leave_the_entities(
    ngsi_client: TestClient,
) -> None:
    seed(ngsi_client, 1, 2)
    dropped = ngsi_client.delete(
        f"{API}/entities",
        params={"id": "urn:ngsi-ld:Building:1", "type": "Building", "drop": "name"},
    )
    assert dropped.status_code == 204
    first = ngsi_client.get(f"{API}/entities/urn:ngsi-ld:Building:1").json()
    assert "name" not in first and {"height", "owner"} <= first.keys()
    kept = ngsi_client.delete(
        f"{API}/entities",
        params={"id": "urn:ngsi-ld:Building:2", "type": "Building", "keep": "name"},
    )
    assert kept.status_code == 204
    second = ngsi_client.get(f"{API}/entities/urn:ngsi-ld:Building:2").json()
    assert second["name"]["value"] == "Tower 2"
    assert not {"height", "owner"} & second.keys()
