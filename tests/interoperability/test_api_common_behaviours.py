"""Behaviours every route shares (6.3.14 tenant echo) and path edge cases of 5.6/5.7."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CORE = "https://uri.etsi.org/ngsi-ld/default-context/"
BUILDING = "urn:ngsi-ld:Building:1"


def seed(client: TestClient) -> None:
    entity = {"id": BUILDING, "type": "Building", "height": {"type": "Property", "value": 3}}
    assert client.post(f"{API}/entities", json=entity).status_code == 201


def test_the_tenant_is_echoed_on_errors_too(ngsi_client: TestClient) -> None:
    response = ngsi_client.get(
        f"{API}/entities", params={"type": "Building"}, headers={"NGSILD-Tenant": "nobody"}
    )
    assert response.status_code == 404
    assert response.json()["type"] == ERRORS + "NonexistentTenant"
    assert response.headers["NGSILD-Tenant"] == "nobody"


def test_batch_delete_takes_an_id_array_as_json_ld(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    response = ngsi_client.post(
        f"{API}/entityOperations/delete",
        content=f'["{BUILDING}"]',
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 204, response.text
    assert ngsi_client.get(f"{API}/entities/{BUILDING}").status_code == 404


def test_types_and_attributes_can_be_named_by_full_iri(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    attribute = ngsi_client.get(f"{API}/attributes/{quote(CORE + 'height', safe='')}")
    assert attribute.status_code == 200, attribute.text
    assert attribute.json()["attributeName"] == "height"
    entity_type = ngsi_client.get(f"{API}/types/{CORE}Building")
    assert entity_type.status_code == 200, entity_type.text
    assert entity_type.json()["entityCount"] == 1


def test_delete_honours_the_type_selector(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    path = f"{API}/entities/{BUILDING}"
    wrong = ngsi_client.delete(path, params={"type": "Vehicle"})
    assert wrong.status_code == 404
    assert wrong.json()["type"] == ERRORS + "ResourceNotFound"
    assert ngsi_client.get(path).status_code == 200  # still there
    assert ngsi_client.delete(path, params={"type": "Building"}).status_code == 204


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_replace_or_merge_without_an_id_is_bad_request(
    ngsi_client: TestClient, method: str
) -> None:
    response = ngsi_client.request(method, f"{API}/entities/", json={"type": "Building"})
    assert response.status_code == 400
    # the slash-less path is where /entities/ is redirected to
    response = ngsi_client.request(method, f"{API}/entities", json={"type": "Building"})
    assert response.status_code == 400
    assert response.json()["type"] == ERRORS + "BadRequestData"


def test_batch_reports_a_misplaced_context_per_entity(ngsi_client: TestClient) -> None:
    context = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    with_context = {"id": "urn:ngsi-ld:Building:2", "type": "Building", "@context": context}
    plain = {"id": BUILDING, "type": "Building"}
    as_json = ngsi_client.post(f"{API}/entityOperations/create", json=[with_context, plain])
    assert as_json.status_code == 207, as_json.text
    assert as_json.json()["success"] == [BUILDING]
    assert [e["entityId"] for e in as_json.json()["errors"]] == ["urn:ngsi-ld:Building:2"]
    as_json_ld = ngsi_client.post(
        f"{API}/entityOperations/upsert",
        content=json.dumps([with_context, plain]),
        headers={"Content-Type": "application/ld+json"},
    )
    assert as_json_ld.status_code == 207, as_json_ld.text
    assert [e["entityId"] for e in as_json_ld.json()["errors"]] == [BUILDING]


def test_a_batch_with_a_null_item_is_refused_whole(ngsi_client: TestClient) -> None:
    response = ngsi_client.post(
        f"{API}/entityOperations/create", json=[{"id": BUILDING, "type": "Building"}, None]
    )
    assert response.status_code == 400
    assert response.json()["type"] == ERRORS + "BadRequestData"
    assert ngsi_client.get(f"{API}/entities/{BUILDING}").status_code == 404


def test_the_collection_path_with_a_slash_still_creates_and_queries(
    ngsi_client: TestClient,
) -> None:
    created = ngsi_client.post(f"{API}/entities/", json={"id": BUILDING, "type": "Building"})
    assert created.status_code == 201, created.text
    found = ngsi_client.get(f"{API}/entities/", params={"type": "Building"})
    assert [entity["id"] for entity in found.json()] == [BUILDING]


def test_create_with_a_non_object_body_is_an_invalid_request(ngsi_client: TestClient) -> None:
    response = ngsi_client.post(f"{API}/entities", json=[])
    assert response.status_code == 400
    assert response.json()["type"] == ERRORS + "InvalidRequest"


def test_an_id_upserted_twice_is_listed_once(ngsi_client: TestClient) -> None:
    other = {"id": "urn:ngsi-ld:Building:2", "type": "Building"}
    first = {"id": BUILDING, "type": "Building"}
    response = ngsi_client.post(f"{API}/entityOperations/upsert", json=[first, other, first])
    assert response.status_code == 201, response.text
    assert response.json() == [BUILDING, "urn:ngsi-ld:Building:2"]


@pytest.mark.parametrize("path", ["/types/", "/attributes/", "/types", "/attributes"])
def test_discovery_lists_answer_with_or_without_a_slash(ngsi_client: TestClient, path: str) -> None:
    seed(ngsi_client)
    response = ngsi_client.get(f"{API}{path}", follow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.json()["type"] in {"EntityTypeList", "AttributeList"}


def test_a_subscription_takes_a_merge_patch(ngsi_client: TestClient) -> None:
    subscription = {
        "id": "urn:ngsi-ld:Subscription:merge",
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
    }
    created = ngsi_client.post(f"{API}/subscriptions", json=subscription)
    assert created.status_code == 201, created.text
    url = f"{API}/subscriptions/{subscription['id']}"
    patched = ngsi_client.patch(
        url,
        content=json.dumps({"isActive": False}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 204, patched.text
    assert ngsi_client.get(url).json()["status"] == "paused"
