"""The entity routes end to end: HTTP → expansion → knowledge facade → PostgreSQL → back."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos_interoperability.ngsild.negotiation import link_header

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
LD = {"Content-Type": "application/ld+json"}


def vehicle(number: int, speed: float = 80.0, lon: float = -3.70, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Vehicle:{number}",
        "type": "Vehicle",
        "speed": {"type": "Property", "value": speed, "observedAt": "2024-01-01T00:00:00Z"},
        "brandName": {"type": "Property", "value": "Seat"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [lon, 40.41]},
        },
        **extra,
    }


def create(client: TestClient, entity: dict[str, Any], **headers: str) -> None:
    response = client.post(f"{API}/entities", json=entity, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{API}/entities/{entity['id']}"


def get(client: TestClient, entity_id: str, **params: Any) -> Any:
    response = client.get(f"{API}/entities/{entity_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def error_type(response: Any) -> str:
    return str(response.json()["type"]).removeprefix(ERRORS)


def test_create_retrieve_and_conflict(ngsi_client: TestClient) -> None:
    create(ngsi_client, vehicle(1))
    body = get(ngsi_client, "urn:ngsi-ld:Vehicle:1")
    assert body == vehicle(1)
    response = ngsi_client.get(f"{API}/entities/urn:ngsi-ld:Vehicle:1")
    assert response.headers["Content-Type"].startswith("application/json")
    assert CORE in response.headers["Link"]
    again = ngsi_client.post(f"{API}/entities", json=vehicle(1))
    assert again.status_code == 409 and error_type(again) == "AlreadyExists"
    missing = ngsi_client.get(f"{API}/entities/urn:ngsi-ld:Vehicle:404")
    assert missing.status_code == 404 and error_type(missing) == "ResourceNotFound"


def test_json_ld_in_and_out_with_a_user_context(ngsi_client: TestClient) -> None:
    context = [{"brandName": "https://example.org/brandName"}, CORE]
    import orjson

    response = ngsi_client.post(
        f"{API}/entities", content=orjson.dumps({**vehicle(2), "@context": context}), headers=LD
    )
    assert response.status_code == 201, response.text
    as_ld = ngsi_client.get(
        f"{API}/entities/urn:ngsi-ld:Vehicle:2", headers={"Accept": "application/ld+json"}
    )
    assert as_ld.headers["Content-Type"].startswith("application/ld+json")
    assert as_ld.json()["@context"] == CORE
    assert "https://example.org/brandName" in as_ld.json()  # unknown to the core context
    attributes = ngsi_client.get(f"{API}/attributes").json()["attributeList"]
    assert "https://example.org/brandName" in attributes


def test_representations(ngsi_client: TestClient) -> None:
    names = {"type": "LanguageProperty", "languageMap": {"en": "Car", "es": "Coche"}}
    create(ngsi_client, vehicle(3, name=names))
    key_values = get(ngsi_client, "urn:ngsi-ld:Vehicle:3", options="keyValues")
    assert key_values["speed"] == 80.0 and key_values["brandName"] == "Seat"
    concise = get(ngsi_client, "urn:ngsi-ld:Vehicle:3", format="concise")
    assert concise["brandName"] == "Seat"
    assert concise["speed"] == {"value": 80.0, "observedAt": "2024-01-01T00:00:00Z"}
    picked = get(ngsi_client, "urn:ngsi-ld:Vehicle:3", pick="id,speed")
    assert set(picked) == {"id", "speed"}
    omitted = get(ngsi_client, "urn:ngsi-ld:Vehicle:3", omit="speed,location")
    assert "speed" not in omitted and "brandName" in omitted
    with_sys = get(ngsi_client, "urn:ngsi-ld:Vehicle:3", options="sysAttrs")
    assert with_sys["createdAt"].endswith("Z") and "modifiedAt" in with_sys["speed"]
    spanish = get(ngsi_client, "urn:ngsi-ld:Vehicle:3", lang="es")
    assert spanish["name"] == {"type": "Property", "value": "Coche", "lang": "es"}
    only_speed = get(ngsi_client, "urn:ngsi-ld:Vehicle:3", attrs="speed")
    assert "speed" in only_speed and "brandName" not in only_speed


def test_geojson(ngsi_client: TestClient) -> None:
    create(ngsi_client, vehicle(4))
    geo = {"Accept": "application/geo+json"}
    one = ngsi_client.get(f"{API}/entities/urn:ngsi-ld:Vehicle:4", headers=geo)
    assert one.headers["Content-Type"].startswith("application/geo+json")
    feature = one.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": [-3.70, 40.41]}
    assert feature["@context"] == CORE
    collection = ngsi_client.get(
        f"{API}/entities", params={"type": "Vehicle"}, headers={**geo, "Prefer": "body=json"}
    ).json()
    assert collection["type"] == "FeatureCollection" and "@context" not in collection
    assert [f["id"] for f in collection["features"]] == ["urn:ngsi-ld:Vehicle:4"]


def test_query_by_q_geo_count_and_paging(ngsi_client: TestClient) -> None:
    for number, speed, lon in [(10, 30.0, -3.70), (11, 90.0, -3.70), (12, 95.0, -3.50)]:
        create(ngsi_client, vehicle(number, speed=speed, lon=lon))
    response = ngsi_client.get(
        f"{API}/entities",
        params={
            "type": "Vehicle",
            "q": "speed>50",
            "georel": "near;maxDistance==2000",
            "geometry": "Point",
            "coordinates": "[-3.70,40.41]",
            "count": "true",
        },
    )
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()] == ["urn:ngsi-ld:Vehicle:11"]
    assert response.headers["NGSILD-Results-Count"] == "1"
    page = ngsi_client.get(
        f"{API}/entities", params={"type": "Vehicle", "limit": 2, "count": "true"}
    )
    assert len(page.json()) == 2 and page.headers["NGSILD-Results-Count"] == "3"
    bad_q = ngsi_client.get(f"{API}/entities", params={"type": "Vehicle", "q": "speed>>"})
    assert bad_q.status_code == 400 and error_type(bad_q) == "BadRequestData"


def test_replace_merge_and_delete(ngsi_client: TestClient) -> None:
    create(ngsi_client, vehicle(20))
    replaced = ngsi_client.put(
        f"{API}/entities/urn:ngsi-ld:Vehicle:20",
        json={"type": "Vehicle", "speed": {"type": "Property", "value": 1}},
    )
    assert replaced.status_code == 204, replaced.text
    assert set(get(ngsi_client, "urn:ngsi-ld:Vehicle:20")) == {"id", "type", "speed"}
    merged = ngsi_client.patch(
        f"{API}/entities/urn:ngsi-ld:Vehicle:20",
        json={"speed": {"value": 2}, "color": {"value": "red"}},
    )
    assert merged.status_code == 204, merged.text
    body = get(ngsi_client, "urn:ngsi-ld:Vehicle:20", options="keyValues")
    assert body["speed"] == 2 and body["color"] == "red"
    assert ngsi_client.delete(f"{API}/entities/urn:ngsi-ld:Vehicle:20").status_code == 204
    gone = ngsi_client.delete(f"{API}/entities/urn:ngsi-ld:Vehicle:20")
    assert gone.status_code == 404


def test_attribute_routes(ngsi_client: TestClient) -> None:
    create(ngsi_client, vehicle(30))
    path = f"{API}/entities/urn:ngsi-ld:Vehicle:30/attrs"
    appended = ngsi_client.post(
        path, params={"options": "noOverwrite"}, json={"speed": {"value": 1}, "fuel": {"value": 50}}
    )
    assert appended.status_code == 207
    assert appended.json()["updated"] == ["fuel"]
    assert appended.json()["notUpdated"][0]["attributeName"] == "speed"
    # a partial update changes only the members sent
    patched = ngsi_client.patch(f"{path}/speed", json={"value": 7})
    assert patched.status_code == 204
    speed = get(ngsi_client, "urn:ngsi-ld:Vehicle:30")["speed"]
    assert speed["value"] == 7 and speed["observedAt"] == "2024-01-01T00:00:00Z"
    assert ngsi_client.post(path, json={"speed": {"value": 5}}).status_code == 204
    updated = ngsi_client.patch(path, json={"speed": {"value": 6}, "absent": {"value": 1}})
    assert updated.status_code == 207 and updated.json()["updated"] == ["speed"]
    put = ngsi_client.put(f"{path}/speed", json={"type": "Property", "value": 8})
    assert put.status_code == 204
    assert "observedAt" not in get(ngsi_client, "urn:ngsi-ld:Vehicle:30")["speed"]
    gps = "urn:ngsi-ld:Dataset:gps"
    ngsi_client.post(path, json={"fuel": {"value": 10, "datasetId": gps}})
    assert len(get(ngsi_client, "urn:ngsi-ld:Vehicle:30")["fuel"]) == 2
    assert ngsi_client.delete(f"{path}/fuel", params={"datasetId": gps}).status_code == 204
    assert get(ngsi_client, "urn:ngsi-ld:Vehicle:30")["fuel"]["value"] == 50
    ngsi_client.post(path, json={"fuel": {"value": 10, "datasetId": gps}})
    assert ngsi_client.delete(f"{path}/fuel", params={"deleteAll": "true"}).status_code == 204
    assert "fuel" not in get(ngsi_client, "urn:ngsi-ld:Vehicle:30")
    missing = ngsi_client.delete(f"{path}/fuel")
    assert missing.status_code == 404 and error_type(missing) == "ResourceNotFound"


def test_batch_operations_report_success_and_errors(ngsi_client: TestClient) -> None:
    ops = f"{API}/entityOperations"
    created = ngsi_client.post(f"{ops}/create", json=[vehicle(40), vehicle(41)])
    assert created.status_code == 201 and sorted(created.json()) == [
        "urn:ngsi-ld:Vehicle:40",
        "urn:ngsi-ld:Vehicle:41",
    ]
    mixed = ngsi_client.post(f"{ops}/create", json=[vehicle(42), vehicle(40), {"id": "x"}])
    assert mixed.status_code == 207
    assert mixed.json()["success"] == ["urn:ngsi-ld:Vehicle:42"]
    errors = {e["entityId"]: e["error"]["type"] for e in mixed.json()["errors"]}
    assert errors == {
        "urn:ngsi-ld:Vehicle:40": ERRORS + "AlreadyExists",
        "x": ERRORS + "BadRequestData",
    }
    upsert = ngsi_client.post(f"{ops}/upsert", json=[vehicle(40, speed=1.0), vehicle(43)])
    assert upsert.status_code == 201, upsert.text
    assert upsert.json() == ["urn:ngsi-ld:Vehicle:43"]  # only the new one
    again = ngsi_client.post(f"{ops}/upsert", json=[vehicle(43)])
    assert again.status_code == 204
    assert get(ngsi_client, "urn:ngsi-ld:Vehicle:40")["speed"]["value"] == 1.0
    update = ngsi_client.post(
        f"{ops}/update",
        json=[{"id": "urn:ngsi-ld:Vehicle:41", "speed": {"value": 3}}],
    )
    assert update.status_code == 204, update.text
    merge = ngsi_client.post(
        f"{ops}/merge", json=[{"id": "urn:ngsi-ld:Vehicle:41", "color": {"value": "blue"}}]
    )
    assert merge.status_code == 204, merge.text
    queried = ngsi_client.post(
        f"{ops}/query",
        json={"type": "Query", "entities": [{"type": "Vehicle"}], "q": "speed<10"},
    )
    assert sorted(e["id"] for e in queried.json()) == [
        "urn:ngsi-ld:Vehicle:40",
        "urn:ngsi-ld:Vehicle:41",
    ]
    deleted = ngsi_client.post(
        f"{ops}/delete", json=["urn:ngsi-ld:Vehicle:40", "urn:ngsi-ld:Vehicle:999"]
    )
    assert deleted.status_code == 207
    assert deleted.json()["success"] == ["urn:ngsi-ld:Vehicle:40"]
    assert deleted.json()["errors"][0]["error"]["type"] == ERRORS + "ResourceNotFound"


def test_purge_discovery_and_tenants(ngsi_client: TestClient) -> None:
    create(ngsi_client, vehicle(50))
    create(ngsi_client, {"id": "urn:ngsi-ld:Building:1", "type": "Building", "height": 10})
    create(ngsi_client, vehicle(51), **{"NGSILD-Tenant": "city-b"})
    types = ngsi_client.get(f"{API}/types").json()["typeList"]
    assert sorted(types) == ["Building", "Vehicle"]
    info = ngsi_client.get(f"{API}/types/Vehicle").json()
    assert info["entityCount"] == 1 and {"speed", "brandName", "location"} <= {
        a["attributeName"] for a in info["attributeDetails"]
    }
    speed = ngsi_client.get(f"{API}/attributes/speed").json()
    assert speed["typeNames"] == ["Vehicle"] and speed["attributeCount"] == 1
    details = ngsi_client.get(f"{API}/types", params={"details": "true"}).json()
    assert {d["typeName"] for d in details} == {"Building", "Vehicle"}
    # tenant isolation: each tenant sees its own entities only
    b = {"NGSILD-Tenant": "city-b"}
    response_b = ngsi_client.get(f"{API}/entities", params={"type": "Vehicle"}, headers=b)
    assert response_b.headers["NGSILD-Tenant"] == "city-b"  # echoed (6.3.14)
    assert [e["id"] for e in response_b.json()] == ["urn:ngsi-ld:Vehicle:51"]
    hidden = ngsi_client.get(f"{API}/entities/urn:ngsi-ld:Vehicle:51")
    assert hidden.status_code == 404
    unknown = ngsi_client.get(
        f"{API}/entities", params={"type": "Vehicle"}, headers={"NGSILD-Tenant": "nobody"}
    )
    assert unknown.status_code == 404 and error_type(unknown) == "NonexistentTenant"
    # purge by type in the default tenant leaves the other type and tenant alone
    assert ngsi_client.delete(f"{API}/entities", params={"type": "Vehicle"}).status_code == 204
    left = ngsi_client.get(f"{API}/entities", params={"type": "Vehicle,Building"}).json()
    assert [e["id"] for e in left] == ["urn:ngsi-ld:Building:1"]
    assert ngsi_client.get(f"{API}/entities/urn:ngsi-ld:Vehicle:51", headers=b).status_code == 200


def test_link_header_context_expands_query_terms(ngsi_client: TestClient) -> None:
    context_url = "http://127.0.0.1:9/unreachable.jsonld"
    response = ngsi_client.get(
        f"{API}/entities", params={"type": "Vehicle"}, headers={"Link": link_header(context_url)}
    )
    assert response.status_code == 504 and error_type(response) == "LdContextNotAvailable"


def test_attribute_fragment_sent_as_json_ld(ngsi_client: TestClient) -> None:
    import orjson

    create(ngsi_client, vehicle(60))
    response = ngsi_client.patch(
        f"{API}/entities/urn:ngsi-ld:Vehicle:60/attrs/speed",
        content=orjson.dumps({"value": 12, "@context": CORE}),
        headers=LD,
    )
    assert response.status_code == 204, response.text
    assert get(ngsi_client, "urn:ngsi-ld:Vehicle:60")["speed"]["value"] == 12
    json_value = {"type": "JsonProperty", "json": {"a": None, "b": [1, None]}}
    appended = ngsi_client.post(
        f"{API}/entities/urn:ngsi-ld:Vehicle:60/attrs", json={"doc": json_value}
    )
    assert appended.status_code == 204, appended.text
    assert get(ngsi_client, "urn:ngsi-ld:Vehicle:60")["doc"] == json_value


def test_update_with_ngsi_ld_null_deletes_and_merge_patch_is_accepted(
    ngsi_client: TestClient,
) -> None:
    create(ngsi_client, vehicle(61))
    path = f"{API}/entities/urn:ngsi-ld:Vehicle:61/attrs"
    deleted = ngsi_client.patch(path, json={"brandName": {"value": "urn:ngsi-ld:null"}})
    assert deleted.status_code == 204, deleted.text
    assert "brandName" not in get(ngsi_client, "urn:ngsi-ld:Vehicle:61")
    merge = ngsi_client.patch(
        f"{path}/speed",
        content=b'{"value": 33}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert merge.status_code == 204, merge.text
    refused = ngsi_client.post(
        path,
        content=b'{"x": {"value": 1}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert refused.status_code == 415
