"""``/jsonldContexts`` and the common request checks, through the assembled application."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cityos_interoperability.ngsild.jsonld.documents import core_context_url

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CONTEXT = {"@context": {"brandName": "https://example.org/brandName"}}


def assert_problem(response: object, status: int, type_name: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["type"] == ERRORS + type_name
    assert body["title"] and body["detail"] and body["title"] != body["detail"]
    return body  # type: ignore[no-any-return]


def add_context(client: TestClient, tenant: str | None = None) -> str:
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    response = client.post(f"{API}/jsonldContexts", json=CONTEXT, headers=headers)
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert f"{API}/jsonldContexts/" in location
    return location.rsplit("/", 1)[-1]


def test_hosted_context_is_served_listed_and_deleted(ngsi_client: TestClient) -> None:
    context_id = add_context(ngsi_client)
    served = ngsi_client.get(f"{API}/jsonldContexts/{context_id}")
    assert served.status_code == 200
    assert served.json() == CONTEXT
    listed = ngsi_client.get(f"{API}/jsonldContexts", params={"kind": "Hosted"}).json()
    assert [url.rsplit("/", 1)[-1] for url in listed] == [context_id]
    details = ngsi_client.get(f"{API}/jsonldContexts/{context_id}", params={"details": "true"})
    assert details.json()["kind"] == "Hosted" and details.json()["localId"] == context_id
    assert ngsi_client.delete(f"{API}/jsonldContexts/{context_id}").status_code == 204
    gone = ngsi_client.get(f"{API}/jsonldContexts/{context_id}")
    assert_problem(gone, 404, "ResourceNotFound")


def test_core_context_is_served_and_cannot_be_deleted(ngsi_client: TestClient) -> None:
    url = core_context_url("1.8")
    listed = ngsi_client.get(f"{API}/jsonldContexts").json()
    assert url in listed
    served = ngsi_client.get(f"{API}/jsonldContexts/{url}")
    assert served.status_code == 200
    assert "GeoProperty" in served.json()["@context"]
    assert_problem(ngsi_client.delete(f"{API}/jsonldContexts/{url}"), 400, "BadRequestData")


def test_hosted_contexts_are_per_tenant(ngsi_client: TestClient) -> None:
    mine = add_context(ngsi_client, tenant="tenant-a")
    assert (
        ngsi_client.get(
            f"{API}/jsonldContexts/{mine}", headers={"NGSILD-Tenant": "tenant-a"}
        ).status_code
        == 200
    )
    other = ngsi_client.get(f"{API}/jsonldContexts/{mine}", headers={"NGSILD-Tenant": "tenant-b"})
    assert_problem(other, 404, "ResourceNotFound")
    assert_problem(ngsi_client.get(f"{API}/jsonldContexts/{mine}"), 404, "ResourceNotFound")
    listed = ngsi_client.get(
        f"{API}/jsonldContexts", params={"kind": "Hosted"}, headers={"NGSILD-Tenant": "tenant-b"}
    )
    assert listed.json() == []


def test_invalid_context_is_refused(ngsi_client: TestClient) -> None:
    response = ngsi_client.post(f"{API}/jsonldContexts", json={"@context": {"x": {"@id": 5}}})
    assert_problem(response, 400, "BadRequestData")
    response = ngsi_client.post(f"{API}/jsonldContexts", json={"notAContext": 1})
    assert_problem(response, 400, "BadRequestData")


def test_unsupported_media_type_is_415(ngsi_client: TestClient) -> None:
    response = ngsi_client.post(
        f"{API}/jsonldContexts", content=b"<xml/>", headers={"Content-Type": "application/xml"}
    )
    assert_problem(response, 415, "UnsupportedMediaType")


def test_malformed_json_is_invalid_request(ngsi_client: TestClient) -> None:
    response = ngsi_client.post(
        f"{API}/jsonldContexts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "InvalidRequest")


def test_context_document_without_context_is_refused(
    ngsi_client: TestClient,
) -> None:
    response = ngsi_client.post(
        f"{API}/jsonldContexts",
        content=b'{"a": 1}',
        headers={"Content-Type": "application/ld+json"},
    )
    assert_problem(response, 400, "BadRequestData")


def test_too_large_body_is_413(ngsi_client: TestClient) -> None:
    big = {"@context": {f"term{i}": f"https://example.org/{'x' * 100}/{i}" for i in range(30000)}}
    response = ngsi_client.post(f"{API}/jsonldContexts", json=big)
    body = assert_problem(response, 413, "PayloadTooLarge")
    assert "limit" in str(body["detail"])


def test_missing_content_length_is_a_bare_411(ngsi_client: TestClient) -> None:
    def chunks() -> object:
        yield b'{"@context": {}}'

    response = ngsi_client.post(
        f"{API}/jsonldContexts",
        content=chunks(),  # type: ignore[arg-type]
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 411
    assert response.content == b""


def test_unknown_query_parameter_is_invalid_request(ngsi_client: TestClient) -> None:
    response = ngsi_client.get(f"{API}/jsonldContexts", params={"invalidParams": "x"})
    body = assert_problem(response, 400, "InvalidRequest")
    assert "invalidParams" in str(body["detail"])


def test_wrong_parameter_type_is_invalid_request(ngsi_client: TestClient) -> None:
    response = ngsi_client.get(f"{API}/jsonldContexts", params={"kind": "Bogus"})
    assert_problem(response, 400, "InvalidRequest")


def test_not_acceptable_is_406(ngsi_client: TestClient) -> None:
    url = core_context_url("1.8")
    response = ngsi_client.get(f"{API}/jsonldContexts/{url}", headers={"Accept": "text/html"})
    assert_problem(response, 406, "NotAcceptable")


def test_invalid_tenant_name_is_bad_request_data(ngsi_client: TestClient) -> None:
    response = ngsi_client.get(f"{API}/jsonldContexts", headers={"NGSILD-Tenant": "bad tenant!"})
    assert_problem(response, 400, "BadRequestData")
