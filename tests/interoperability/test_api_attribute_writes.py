"""Attribute writes: the ``type`` selector (4.17) and NGSI-LD Null instances (5.6.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ENTITY = f"{API}/entities/urn:ngsi-ld:Building:1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
Write = Callable[[TestClient, str], Any]

WRITES: dict[str, Write] = {
    "append": lambda c, t: c.post(
        f"{ENTITY}/attrs", params={"type": t}, json={"name": {"type": "Property", "value": "y"}}
    ),
    "update": lambda c, t: c.patch(
        f"{ENTITY}/attrs", params={"type": t}, json={"name": {"type": "Property", "value": "y"}}
    ),
    "partial": lambda c, t: c.patch(
        f"{ENTITY}/attrs/name", params={"type": t}, json={"value": "y"}
    ),
    "delete": lambda c, t: c.delete(f"{ENTITY}/attrs/name", params={"type": t}),
}


@pytest.mark.parametrize("write", WRITES)
def test_a_write_with_another_type_is_not_found_and_changes_nothing(
    ngsi_client: TestClient, write: str
) -> None:
    entity = {"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": "x"}
    assert ngsi_client.post(f"{API}/entities", json=entity).status_code == 201
    refused = WRITES[write](ngsi_client, "Vehicle")
    assert refused.status_code == 404
    assert refused.json()["type"] == ERRORS + "ResourceNotFound"
    assert ngsi_client.get(ENTITY).json()["name"]["value"] == "x"
    accepted = WRITES[write](ngsi_client, "Building")
    assert accepted.status_code == 204, accepted.text
    after = ngsi_client.get(ENTITY).json()
    assert after.get("name", {"value": None})["value"] == (None if write == "delete" else "y")


def test_null_in_an_update_deletes_only_the_instance_it_names(ngsi_client: TestClient) -> None:
    """5.6.2: an instance set to NGSI-LD Null without a datasetId is the default one."""
    dataset = "urn:ngsi-ld:Dataset:01"
    entity = {
        "id": "urn:ngsi-ld:Building:1",
        "type": "Building",
        "name": [
            {"type": "Property", "value": "Eiffel Tower", "datasetId": dataset},
            {"type": "Property", "value": "Tour Eiffel"},
        ],
    }
    assert ngsi_client.post(f"{API}/entities", json=entity).status_code == 201
    null = {"name": {"type": "Property", "value": "urn:ngsi-ld:null"}}
    assert ngsi_client.patch(f"{ENTITY}/attrs", json=null).status_code == 204
    name = ngsi_client.get(ENTITY).json()["name"]
    assert name == {"type": "Property", "value": "Eiffel Tower", "datasetId": dataset}


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/entities//attrs/", "/entities//attrs/name"])
def test_an_empty_entity_id_is_bad_request_data(
    ngsi_client: TestClient, method: str, path: str
) -> None:
    body = None if method == "DELETE" else {"name": {"type": "Property", "value": 1}}
    response = ngsi_client.request(method, API + path, json=body)
    assert response.status_code == 400
    assert response.json()["type"] == ERRORS + "BadRequestData"


@pytest.mark.parametrize("partial", [False, True])
def test_a_null_language_map_deletes_the_language_property_instance(
    ngsi_client: TestClient, partial: bool
) -> None:
    """4.5.18: a LanguageProperty is NGSI-LD Null with ``languageMap: {"@none": null}``."""
    dataset = "urn:ngsi-ld:Dataset:01"
    garden = {"type": "LanguageProperty", "languageMap": {"en": "Garden"}, "datasetId": dataset}
    entity = {
        "id": "urn:ngsi-ld:Building:1",
        "type": "Building",
        "street": [garden, {"type": "LanguageProperty", "languageMap": {"en": "Avenue"}}],
    }
    assert ngsi_client.post(f"{API}/entities", json=entity).status_code == 201
    null = {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}}
    if partial:
        response = ngsi_client.patch(f"{ENTITY}/attrs/street", json=null)
    else:
        response = ngsi_client.patch(f"{ENTITY}/attrs", json={"street": null})
    assert response.status_code == 204, response.text
    assert ngsi_client.get(ENTITY).json()["street"] == garden


def test_an_update_adds_types_and_replaces_only_an_existing_scope(ngsi_client: TestClient) -> None:
    entity = {"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": "x"}
    assert ngsi_client.post(f"{API}/entities", json=entity).status_code == 201
    no_scope = ngsi_client.patch(f"{ENTITY}/attrs", json={"scope": "/Madrid"})
    assert no_scope.status_code == 207
    assert [item["attributeName"] for item in no_scope.json()["notUpdated"]] == ["scope"]
    assert "scope" not in ngsi_client.get(ENTITY).json()
    typed = ngsi_client.patch(f"{ENTITY}/attrs", json={"type": ["Vehicle", "Building"]})
    assert typed.status_code == 204
    assert ngsi_client.get(ENTITY).json()["type"] == ["Building", "Vehicle"]
    ngsi_client.post(f"{ENTITY}/attrs", json={"scope": "/Madrid"})
    moved = ngsi_client.patch(f"{ENTITY}/attrs", json={"scope": "/Paris"})
    assert moved.status_code == 204
    assert ngsi_client.get(ENTITY).json()["scope"] == "/Paris"


def test_scope_can_be_deleted_through_the_attribute_path_but_not_set(
    ngsi_client: TestClient,
) -> None:
    entity = {"id": "urn:ngsi-ld:Building:1", "type": "Building", "scope": "/Madrid"}
    assert ngsi_client.post(f"{API}/entities", json=entity).status_code == 201
    for method in ("PATCH", "PUT"):
        refused = ngsi_client.request(method, f"{ENTITY}/attrs/scope", json={"value": "/Paris"})
        assert refused.status_code == 400
        assert refused.json()["type"] == ERRORS + "BadRequestData"
    assert ngsi_client.delete(f"{ENTITY}/attrs/scope").status_code == 204
    assert "scope" not in ngsi_client.get(ENTITY).json()
    assert ngsi_client.delete(f"{ENTITY}/attrs/scope").status_code == 404
