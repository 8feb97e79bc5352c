"""Request checks of the entity routes that the API decides before the context store.

Media types (415), the @context rules of 6.3.5, entity validation (400 BadRequestData),
paging limits (403 TooManyResults), unknown parameters (400 InvalidRequest), Accept (406),
and the OpenAPI document every route appears in.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cityos_interoperability.ngsild.negotiation import link_header

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
ENTITY = {"id": "urn:ngsi-ld:Building:1", "type": "Building", "height": {"value": 10}}
LD = {"Content-Type": "application/ld+json"}


def problem_type(response: object) -> str:
    return str(response.json()["type"]).removeprefix(ERRORS)  # type: ignore[attr-defined]


def test_json_body_with_context_is_bad_request_data(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.post(
        f"{API}/entities", json={**ENTITY, "@context": "https://example.org/ctx.jsonld"}
    )
    assert response.status_code == 400
    assert problem_type(response) == "BadRequestData"


def test_ld_json_body_without_context_is_bad_request_data(shared_ngsi_client: TestClient) -> None:
    import json

    response = shared_ngsi_client.post(f"{API}/entities", content=json.dumps(ENTITY), headers=LD)
    assert response.status_code == 400
    assert problem_type(response) == "BadRequestData"


@pytest.mark.parametrize("media_type", ["text/plain", "application/xml", "application/geo+json"])
def test_other_body_media_types_are_415(shared_ngsi_client: TestClient, media_type: str) -> None:
    response = shared_ngsi_client.post(
        f"{API}/entities", content=b"{}", headers={"Content-Type": media_type}
    )
    assert response.status_code == 415
    assert problem_type(response) == "UnsupportedMediaType"


@pytest.mark.parametrize(
    "entity",
    [
        {"type": "Building"},
        {"id": "urn:ngsi-ld:Building:1"},
        {**ENTITY, "height": {"type": "Property"}},
        {**ENTITY, "owner": {"type": "Relationship", "object": "not a uri"}},
        {**ENTITY, "location": {"type": "GeoProperty", "value": {"type": "Point"}}},
    ],
)
def test_invalid_entities_are_bad_request_data(
    shared_ngsi_client: TestClient, entity: object
) -> None:
    response = shared_ngsi_client.post(f"{API}/entities", json=entity)
    assert response.status_code == 400, response.text
    assert problem_type(response) == "BadRequestData"


def test_unreachable_link_context_is_504(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.post(
        f"{API}/entities",
        json=ENTITY,
        headers={"Link": link_header("http://127.0.0.1:9/ctx.jsonld")},
    )
    assert response.status_code == 504
    assert problem_type(response) == "LdContextNotAvailable"


def test_entity_id_in_path_must_be_a_uri(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.get(f"{API}/entities/not-a-uri")
    assert response.status_code == 400
    assert problem_type(response) == "BadRequestData"


def test_too_large_page_is_too_many_results(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.get(
        f"{API}/entities", params={"type": "Building", "limit": 100000}
    )
    assert response.status_code == 403
    assert problem_type(response) == "TooManyResults"


def test_unknown_parameter_is_invalid_request(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.get(
        f"{API}/entities", params={"type": "Building", "invalidParams": "invalidValue"}
    )
    assert response.status_code == 400
    assert problem_type(response) == "InvalidRequest"


def test_unacceptable_accept_is_406(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.get(
        f"{API}/entities/urn:ngsi-ld:Building:1", headers={"Accept": "text/html"}
    )
    assert response.status_code == 406


def test_conflicting_options_are_bad_request_data(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.get(
        f"{API}/entities", params={"type": "Building", "options": "keyValues,concise"}
    )
    assert response.status_code == 400
    response = shared_ngsi_client.get(
        f"{API}/entities", params={"type": "Building", "pick": "a", "omit": "b"}
    )
    assert response.status_code == 400


def test_batch_body_must_be_an_array(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.post(f"{API}/entityOperations/create", json=ENTITY)
    assert response.status_code == 400
    assert problem_type(response) == "BadRequestData"


def test_openapi_lists_every_route_with_summary_and_operation_id(
    shared_ngsi_client: TestClient,
) -> None:
    spec = shared_ngsi_client.get("/openapi.json").json()
    operations = {
        (method.upper(), path): operation
        for path, methods in spec["paths"].items()
        if path.startswith(API)
        for method, operation in methods.items()
    }
    expected = {
        ("POST", f"{API}/entities"),
        ("GET", f"{API}/entities"),
        ("DELETE", f"{API}/entities"),
        ("GET", f"{API}/entities/{{entityId}}"),
        ("PUT", f"{API}/entities/{{entityId}}"),
        ("PATCH", f"{API}/entities/{{entityId}}"),
        ("DELETE", f"{API}/entities/{{entityId}}"),
        ("POST", f"{API}/entities/{{entityId}}/attrs"),
        ("PATCH", f"{API}/entities/{{entityId}}/attrs"),
        ("PATCH", f"{API}/entities/{{entityId}}/attrs/{{attrId}}"),
        ("PUT", f"{API}/entities/{{entityId}}/attrs/{{attrId}}"),
        ("DELETE", f"{API}/entities/{{entityId}}/attrs/{{attrId}}"),
        ("POST", f"{API}/entityOperations/create"),
        ("POST", f"{API}/entityOperations/upsert"),
        ("POST", f"{API}/entityOperations/update"),
        ("POST", f"{API}/entityOperations/delete"),
        ("POST", f"{API}/entityOperations/merge"),
        ("POST", f"{API}/entityOperations/query"),
        ("GET", f"{API}/types"),
        ("GET", f"{API}/types/{{type}}"),
        ("GET", f"{API}/attributes"),
        ("GET", f"{API}/attributes/{{attrId}}"),
        ("GET", f"{API}/jsonldContexts"),
        ("GET", f"{API}/info/sourceIdentity"),
        ("POST", f"{API}/jsonldContexts"),
    }
    assert expected <= set(operations)
    assert all(op.get("summary") for op in operations.values())
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids))


def test_source_identity_names_each_tenant(shared_ngsi_client: TestClient) -> None:
    default = shared_ngsi_client.get(f"{API}/info/sourceIdentity").json()
    tenant_a = shared_ngsi_client.get(
        f"{API}/info/sourceIdentity", headers={"NGSILD-Tenant": "a"}
    ).json()
    again = shared_ngsi_client.get(
        f"{API}/info/sourceIdentity", headers={"NGSILD-Tenant": "a"}
    ).json()
    assert default["type"] == "ContextSourceIdentity"
    assert default["id"].startswith("urn:")
    assert default["contextSourceUptime"].startswith("PT")
    assert default["contextSourceTimeAt"].endswith("Z")
    assert tenant_a["contextSourceAlias"] != default["contextSourceAlias"]
    assert again["contextSourceAlias"] == tenant_a["contextSourceAlias"]


def test_batch_query_body_must_be_a_query(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.post(f"{API}/entityOperations/query", json={"type": "NotAQuery"})
    assert response.status_code == 400
    assert problem_type(response) == "BadRequestData"
