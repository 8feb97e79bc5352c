"""Query and retrieve rules of 5.7.1.4/5.7.2.4: scope, datasetId, attrs, selectors, options."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CORE = "https://uri.etsi.org/ngsi-ld/default-context/"
VEHICLE = "urn:ngsi-ld:Vehicle:A"
FRENCH = "urn:ngsi-ld:Dataset:french"


def seed(client: TestClient) -> None:
    vehicle = {
        "id": VEHICLE,
        "type": "Vehicle",
        "name": [
            {"type": "Property", "value": "Car"},
            {"type": "Property", "value": "Voiture", "datasetId": FRENCH},
        ],
        "speed": {"type": "Property", "value": 80},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8, 40]}},
    }
    assert client.post(f"{API}/entities", json=vehicle).status_code == 201


def problem(response: Any, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["type"] == ERRORS + kind


@pytest.mark.parametrize(
    "params",
    [{"id": VEHICLE}, {"idPattern": ".*"}, {"attrs": "createdAt"}, {"type": "*", "local": "false"}],
)
def test_a_too_wide_query_is_refused(ngsi_client: TestClient, params: dict[str, str]) -> None:
    seed(ngsi_client)
    problem(ngsi_client.get(f"{API}/entities", params=params), 400, "BadRequestData")


@pytest.mark.parametrize("params", [{"type": "*"}, {"id": VEHICLE, "local": "true"}])
def test_every_type_or_local_qualifies(ngsi_client: TestClient, params: dict[str, str]) -> None:
    seed(ngsi_client)
    response = ngsi_client.get(f"{API}/entities", params=params)
    assert response.status_code == 200, response.text
    assert [entity["id"] for entity in response.json()] == [VEHICLE]


def test_dataset_id_selects_attribute_instances(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    french = ngsi_client.get(
        f"{API}/entities", params={"type": "Vehicle", "datasetId": FRENCH}
    ).json()[0]
    assert french["name"]["value"] == "Voiture"
    assert "speed" not in french  # only the default instance of speed exists
    default = ngsi_client.get(
        f"{API}/entities/{VEHICLE}", params={"datasetId": "@none", "attrs": "name"}
    ).json()
    assert default["name"] == {"type": "Property", "value": "Car"}


def test_attrs_accept_full_iris_but_not_core_members(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    by_iri = ngsi_client.get(f"{API}/entities", params={"attrs": CORE + "speed"})
    assert by_iri.status_code == 200, by_iri.text
    assert set(by_iri.json()[0]) == {"id", "type", "speed"}
    problem(ngsi_client.get(f"{API}/entities", params={"attrs": "id,type"}), 400, "BadRequestData")


def test_retrieve_checks_the_type_selector_and_an_empty_projection(
    ngsi_client: TestClient,
) -> None:
    seed(ngsi_client)
    path = f"{API}/entities/{VEHICLE}"
    problem(ngsi_client.get(path, params={"type": "Building"}), 404, "ResourceNotFound")
    assert ngsi_client.get(path, params={"type": "Building,Vehicle"}).status_code == 200
    problem(ngsi_client.get(path, params={"pick": "unknown"}), 404, "ResourceNotFound")


def test_geometry_property_needs_geojson(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    path = f"{API}/entities/{VEHICLE}"
    params = {"geometryProperty": "location"}
    problem(ngsi_client.get(path, params=params), 400, "BadRequestData")
    geo = ngsi_client.get(path, params=params, headers={"Accept": "application/geo+json"})
    assert geo.status_code == 200 and geo.json()["type"] == "Feature"


def test_unknown_options_or_format_are_invalid_requests(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    path = f"{API}/entities/{VEHICLE}"
    problem(ngsi_client.get(path, params={"options": "keyValues,bogus"}), 400, "InvalidRequest")
    problem(ngsi_client.get(path, params={"format": "bogus"}), 400, "InvalidRequest")


def test_collation_is_refused_rather_than_ignored(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    params = {"type": "Vehicle", "orderBy": "name"}
    bad = ngsi_client.get(f"{API}/entities", params={**params, "collation": "!!nope"})
    problem(bad, 400, "BadRequestData")
    unsupported = ngsi_client.get(f"{API}/entities", params={**params, "collation": "de"})
    problem(unsupported, 422, "OperationNotSupported")


@pytest.mark.parametrize(
    "body",
    [
        {"type": "Query", "entities": []},
        {"type": "Query", "entities": [{"id": VEHICLE}]},
        {"type": "Query", "entities": [{"type": "Vehicle", "id": "not a uri"}]},
        {"type": "Query", "entities": [{"type": "Vehicle"}], "attrs": []},
        {"type": "Query", "entities": [{"type": "Vehicle"}], "q": 42},
        {"type": "Query", "entities": [{"type": "Vehicle"}], "joinLevel": 0, "join": "flat"},
        {"type": "Query", "entities": [{"type": "Vehicle"}], "temporalQ": {}},
        {"type": "Query", "entities": [{"type": "Vehicle"}], "geoQ": {"coordinates": "8,40"}},
        {"type": "NotQuery", "entities": [{"type": "Vehicle"}]},
    ],
)
def test_a_malformed_query_body_is_bad_request_data(
    ngsi_client: TestClient, body: dict[str, Any]
) -> None:
    response = ngsi_client.post(f"{API}/entityOperations/query", json=body)
    problem(response, 400, "BadRequestData")


def test_query_body_selectors_pick_and_id_precedence(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    query = f"{API}/entityOperations/query"
    selector = {"type": "Vehicle", "id": [VEHICLE], "idPattern": "^nothing$"}
    found = ngsi_client.post(query, json={"type": "Query", "entities": [selector]})
    assert [entity["id"] for entity in found.json()] == [VEHICLE]
    picked = ngsi_client.post(
        query, json={"type": "Query", "entities": [{"type": "Vehicle"}], "pick": ["speed"]}
    )
    assert picked.json() == [{"speed": {"type": "Property", "value": 80}}]


def test_pages_link_to_their_neighbours(ngsi_client: TestClient) -> None:
    for letter in "ABC":
        vehicle = {"id": f"urn:ngsi-ld:Vehicle:{letter}", "type": "Vehicle"}
        assert ngsi_client.post(f"{API}/entities", json=vehicle).status_code == 201

    def links(offset: int) -> dict[str, str]:
        response = ngsi_client.get(
            f"{API}/entities",
            params={"type": "Vehicle", "limit": "1", "offset": str(offset), "count": "true"},
        )
        assert response.status_code == 200 and len(response.json()) == 1
        found = {}
        for link in response.headers["Link"].split(", "):
            target, _, attributes = link.partition(";")
            if 'rel="prev"' in attributes or 'rel="next"' in attributes:
                found["prev" if "prev" in attributes else "next"] = target.strip("<>")
        return found

    base = f"{API}/entities?count=true&limit=1"
    assert links(0) == {"next": f"{base}&offset=1&type=Vehicle"}
    assert links(1) == {
        "prev": f"{base}&offset=0&type=Vehicle",
        "next": f"{base}&offset=2&type=Vehicle",
    }
    assert links(2) == {"prev": f"{base}&offset=1&type=Vehicle"}


def test_entities_a_pick_leaves_empty_are_not_results(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    plain = {"id": "urn:ngsi-ld:Vehicle:B", "type": "Vehicle"}
    assert ngsi_client.post(f"{API}/entities", json=plain).status_code == 201
    response = ngsi_client.get(f"{API}/entities", params={"type": "Vehicle", "pick": "speed"})
    assert response.json() == [{"speed": {"type": "Property", "value": 80}}]


def test_retrieve_with_only_unknown_attrs_is_not_found(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    path = f"{API}/entities/{VEHICLE}"
    problem(ngsi_client.get(path, params={"attrs": "unknown"}), 404, "ResourceNotFound")
    assert set(ngsi_client.get(path, params={"attrs": "unknown,speed"}).json()) == {
        "id",
        "type",
        "speed",
    }


def test_a_malformed_context_source_filter_is_bad_request_data(ngsi_client: TestClient) -> None:
    seed(ngsi_client)
    bad = ngsi_client.get(f"{API}/entities", params={"type": "Vehicle", "csf": "))bad(("})
    problem(bad, 400, "BadRequestData")
    good = ngsi_client.get(f"{API}/entities", params={"type": "Vehicle", "csf": 'name=="x"'})
    assert [entity["id"] for entity in good.json()] == [VEHICLE]
