"""The temporal API through the assembled application, on PostgreSQL (no TimescaleDB here).

Each test uses entities of its own (a fresh id prefix), so tests share one database.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos_interoperability.ngsild.negotiation import link_header

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
SPEED = "https://example.org/vocab/speed"
CONTEXT = {"speed": SPEED}


def at(hour: int, day: int = 1) -> str:
    return f"2020-01-{day:02d}T{hour:02d}:00:00Z"


def instances(values: list[Any], start: int = 0) -> list[dict[str, Any]]:
    return [
        {"type": "Property", "value": value, "observedAt": at(start + index)}
        for index, value in enumerate(values)
    ]


def vehicle_type() -> str:
    return f"Vehicle{uuid.uuid4().hex[:8]}"


def create(client: TestClient, entity_type: str, number: int = 1, **attributes: Any) -> str:
    entity_id = f"urn:ngsi-ld:{entity_type}:{number}"
    body = {"id": entity_id, "type": entity_type, **attributes}
    response = client.post(f"{API}/temporal/entities", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{API}/temporal/entities/{entity_id}"
    return entity_id


def retrieve(client: TestClient, entity_id: str, **params: Any) -> Any:
    response = client.get(f"{API}/temporal/entities/{entity_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def values(entity: dict[str, Any], name: str) -> list[Any]:
    return [instance["value"] for instance in entity[name]]


def problem(response: Any, status: int, type_name: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["type"] == ERRORS + type_name


def test_create_then_add_instances_and_retrieve(shared_ngsi_client: TestClient) -> None:
    kind = vehicle_type()
    entity_id = create(shared_ngsi_client, kind, speed=instances([10, 20, 30]))
    again = shared_ngsi_client.post(
        f"{API}/temporal/entities",
        json={"id": entity_id, "type": kind, "speed": instances([40], start=3)},
    )
    assert again.status_code == 204
    entity = retrieve(shared_ngsi_client, entity_id)
    assert entity["id"] == entity_id and entity["type"] == kind
    assert values(entity, "speed") == [10, 20, 30, 40]
    assert [i["observedAt"] for i in entity["speed"]] == [at(h) for h in range(4)]
    assert all(
        i["instanceId"].startswith("urn:ngsi-ld:attribute:instance:") for i in entity["speed"]
    )


def test_names_are_expanded_and_compacted_with_the_context(shared_ngsi_client: TestClient) -> None:
    kind = vehicle_type()
    entity_id = f"urn:ngsi-ld:{kind}:1"
    created = shared_ngsi_client.post(
        f"{API}/temporal/entities",
        json={"id": entity_id, "type": kind, "speed": instances([1]), "@context": CONTEXT},
        headers={"Content-Type": "application/ld+json"},
    )
    assert created.status_code == 201, created.text
    plain = retrieve(shared_ngsi_client, entity_id)
    assert SPEED in plain and "speed" not in plain
    hosted = shared_ngsi_client.post(f"{API}/jsonldContexts", json={"@context": CONTEXT})
    link = link_header(hosted.headers["Location"])
    compacted = shared_ngsi_client.get(
        f"{API}/temporal/entities/{entity_id}", headers={"Link": link}
    ).json()
    assert "speed" in compacted and SPEED not in compacted


def test_time_windows_and_last_n(shared_ngsi_client: TestClient) -> None:
    entity_id = create(shared_ngsi_client, vehicle_type(), speed=instances([0, 1, 2, 3, 4, 5]))
    # 4.11: after is an inclusive bound, before an exclusive one.
    after = retrieve(shared_ngsi_client, entity_id, timerel="after", timeAt=at(3))
    assert values(after, "speed") == [3, 4, 5]
    fraction = retrieve(shared_ngsi_client, entity_id, timerel="after", timeAt=at(3)[:-1] + ".000Z")
    assert values(fraction, "speed") == [3, 4, 5]
    before = retrieve(shared_ngsi_client, entity_id, timerel="before", timeAt=at(2))
    assert values(before, "speed") == [0, 1]
    between = retrieve(
        shared_ngsi_client, entity_id, timerel="between", timeAt=at(1), endTimeAt=at(4)
    )
    assert values(between, "speed") == [1, 2, 3]
    last = retrieve(shared_ngsi_client, entity_id, lastN=2)
    assert values(last, "speed") == [4, 5]
    last_before = retrieve(shared_ngsi_client, entity_id, lastN=2, timerel="before", timeAt=at(3))
    assert values(last_before, "speed") == [1, 2]


def test_temporal_values_representation(shared_ngsi_client: TestClient) -> None:
    entity_id = create(
        shared_ngsi_client,
        vehicle_type(),
        speed=instances([7, 8]),
        owner=[{"type": "Relationship", "object": "urn:ngsi-ld:Person:1", "observedAt": at(0)}],
    )
    for params in ({"format": "temporalValues"}, {"options": "temporalValues"}):
        entity = retrieve(shared_ngsi_client, entity_id, **params)
        assert entity["speed"] == {"type": "Property", "values": [[7, at(0)], [8, at(1)]]}
        assert entity["owner"] == {
            "type": "Relationship",
            "objects": [["urn:ngsi-ld:Person:1", at(0)]],
        }


def test_aggregated_values_by_day(shared_ngsi_client: TestClient) -> None:
    day_one = instances([1, 3])
    day_two = [
        {**i, "observedAt": at(int(i["observedAt"][11:13]), day=2)} for i in instances([10, 20])
    ]
    entity_id = create(shared_ngsi_client, vehicle_type(), speed=day_one + day_two)
    entity = retrieve(
        shared_ngsi_client,
        entity_id,
        format="aggregatedValues",
        aggrMethods="avg,max,totalCount",
        aggrPeriodDuration="P1D",
    )
    speed = entity["speed"]
    assert speed["avg"] == [[2, at(0), at(0, day=2)], [15, at(0, day=2), at(0, day=3)]]
    assert [row[0] for row in speed["max"]] == [3, 20]
    assert [row[0] for row in speed["totalCount"]] == [2, 2]
    problem(
        shared_ngsi_client.get(
            f"{API}/temporal/entities/{entity_id}", params={"format": "aggregatedValues"}
        ),
        400,
        "BadRequestData",
    )


def test_query_by_type_with_count_and_the_post_form(shared_ngsi_client: TestClient) -> None:
    kind = vehicle_type()
    first = create(shared_ngsi_client, kind, 1, speed=instances([1, 2]))
    second = create(shared_ngsi_client, kind, 2, speed=instances([3, 4]))
    response = shared_ngsi_client.get(
        f"{API}/temporal/entities",
        params={"type": kind, "timerel": "after", "timeAt": at(0), "count": "true"},
    )
    assert response.status_code == 200
    assert response.headers["NGSILD-Results-Count"] == "2"
    found = {entity["id"]: values(entity, "speed") for entity in response.json()}
    assert found == {first: [1, 2], second: [3, 4]}
    posted = shared_ngsi_client.post(
        f"{API}/temporal/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": kind}],
            "q": "speed>3",
            "temporalQ": {"timerel": "before", "timeAt": at(1)},
        },
    )
    assert posted.status_code == 200, posted.text
    assert [(e["id"], values(e, "speed")) for e in posted.json()] == [(second, [3])]


def test_a_query_needs_a_selecting_parameter(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.get(
        f"{API}/temporal/entities",
        params={"id": "urn:ngsi-ld:X:1", "timerel": "after", "timeAt": at(0)},
    )
    problem(response, 400, "BadRequestData")


def test_attributes_instances_and_entities_are_changed_and_deleted(
    shared_ngsi_client: TestClient,
) -> None:
    entity_id = create(shared_ngsi_client, vehicle_type(), speed=instances([1, 2, 3]))
    url = f"{API}/temporal/entities/{entity_id}"
    added = shared_ngsi_client.post(f"{url}/attrs", json={"fuel": instances([50, 49])})
    assert added.status_code == 204, added.text
    entity = retrieve(shared_ngsi_client, entity_id)
    assert values(entity, "fuel") == [50, 49]

    instance = entity["speed"][1]["instanceId"]
    patched = shared_ngsi_client.patch(
        f"{url}/attrs/speed/{instance}", json={"type": "Property", "value": 22}
    )
    assert patched.status_code == 204, patched.text
    assert values(retrieve(shared_ngsi_client, entity_id), "speed") == [1, 22, 3]

    assert shared_ngsi_client.delete(f"{url}/attrs/speed/{instance}").status_code == 204
    assert values(retrieve(shared_ngsi_client, entity_id), "speed") == [1, 3]
    problem(shared_ngsi_client.delete(f"{url}/attrs/speed/{instance}"), 404, "ResourceNotFound")

    assert shared_ngsi_client.delete(f"{url}/attrs/fuel").status_code == 204
    assert "fuel" not in retrieve(shared_ngsi_client, entity_id)

    assert shared_ngsi_client.delete(url).status_code == 204
    problem(shared_ngsi_client.get(url), 404, "ResourceNotFound")
    problem(shared_ngsi_client.delete(url), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    ("path", "params", "status", "type_name"),
    [
        ("/temporal/entities/not-a-uri", {}, 400, "BadRequestData"),
        ("/temporal/entities/urn:ngsi-ld:Nothing:1", {}, 404, "ResourceNotFound"),
        (
            "/temporal/entities/urn:ngsi-ld:X:1",
            {"timerel": "between", "timeAt": at(1)},
            400,
            "BadRequestData",
        ),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"timerel": "after"}, 400, "BadRequestData"),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"format": "shiny"}, 400, "InvalidRequest"),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"options": "shiny"}, 400, "InvalidRequest"),
        (
            "/temporal/entities/urn:ngsi-ld:X:1",
            {"pick": "speed", "omit": "speed"},
            400,
            "BadRequestData",
        ),
        (
            "/temporal/entities/urn:ngsi-ld:X:1",
            {"pick": "id", "attrs": "speed"},
            400,
            "BadRequestData",
        ),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"attrs": "colour"}, 404, "ResourceNotFound"),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"pick": "colour"}, 404, "ResourceNotFound"),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"aggrMethods": "median"}, 400, "BadRequestData"),
        ("/temporal/entities", {"type": "X", "orderBy": "speed"}, 400, "BadRequestData"),
        ("/temporal/entities", {"type": "X", "csf": "(("}, 400, "BadRequestData"),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"lastN": "0"}, 400, "BadRequestData"),
        (
            "/temporal/entities/urn:ngsi-ld:Nothing:1",
            {"pick": "owner{name}"},
            400,
            "BadRequestData",
        ),
        ("/temporal/entities", {"type": "X", "attrs": "owner{name}"}, 400, "BadRequestData"),
        ("/temporal/entities", {"attrs": "createdAt"}, 400, "BadRequestData"),
        (
            "/temporal/entities/urn:ngsi-ld:X:1",
            {"timerel": "after", "timeAt": "2020-08-01"},
            400,
            "BadRequestData",
        ),
        ("/temporal/entities/urn:ngsi-ld:X:1", {"wat": "1"}, 400, "InvalidRequest"),
    ],
)
def test_invalid_requests(
    shared_ngsi_client: TestClient, path: str, params: dict[str, str], status: int, type_name: str
) -> None:
    create_default = shared_ngsi_client.post(
        f"{API}/temporal/entities",
        json={"id": "urn:ngsi-ld:X:1", "type": "X", "speed": instances([1])},
    )
    assert create_default.status_code in (201, 204)
    problem(shared_ngsi_client.get(f"{API}{path}", params=params), status, type_name)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "Vehicle", "speed": instances([1])},
        {"id": "urn:ngsi-ld:Vehicle:x", "speed": instances([1])},
        {"id": "urn:ngsi-ld:Vehicle:x", "type": "Vehicle", "speed": [{"type": "Property"}]},
        {"id": "urn:ngsi-ld:Vehicle:x", "type": "Vehicle", "speed": []},
        {"id": "urn:ngsi-ld:Vehicle:x", "type": "Vehicle", "expiresAt": "urn:ngsi-ld:null"},
    ],
)
def test_invalid_temporal_entities(shared_ngsi_client: TestClient, body: dict[str, Any]) -> None:
    problem(shared_ngsi_client.post(f"{API}/temporal/entities", json=body), 400, "BadRequestData")


def test_temporal_entities_stay_in_their_tenant(shared_ngsi_client: TestClient) -> None:
    tenant = {"NGSILD-Tenant": f"t{uuid.uuid4().hex[:10]}"}
    kind = vehicle_type()
    entity_id = f"urn:ngsi-ld:{kind}:1"
    created = shared_ngsi_client.post(
        f"{API}/temporal/entities",
        json={"id": entity_id, "type": kind, "speed": instances([1])},
        headers=tenant,
    )
    assert created.status_code == 201
    assert (
        shared_ngsi_client.get(f"{API}/temporal/entities/{entity_id}", headers=tenant).status_code
        == 200
    )
    problem(shared_ngsi_client.get(f"{API}/temporal/entities/{entity_id}"), 404, "ResourceNotFound")


def test_an_empty_context_url_is_bad_request_data(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.post(
        f"{API}/temporal/entities",
        json={"id": "urn:ngsi-ld:X:2", "type": "X", "speed": instances([1]), "@context": ""},
        headers={"Content-Type": "application/ld+json"},
    )
    problem(response, 400, "BadRequestData")


def test_simplified_values_of_language_and_json_properties_are_objects(
    shared_ngsi_client: TestClient,
) -> None:
    entity_id = create(
        shared_ngsi_client,
        vehicle_type(),
        street=[
            {"type": "LanguageProperty", "languageMap": {"fr": "Grand Place"}, "observedAt": at(0)}
        ],
        config=[{"type": "JsonProperty", "json": {"mode": "eco"}, "observedAt": at(0)}],
    )
    entity = retrieve(shared_ngsi_client, entity_id, format="temporalValues")
    assert entity["street"]["languageMaps"] == [[{"languageMap": {"fr": "Grand Place"}}, at(0)]]
    assert entity["config"]["jsons"] == [[{"json": {"mode": "eco"}}, at(0)]]


def test_a_query_body_with_aggregation_parameters_aggregates(
    shared_ngsi_client: TestClient,
) -> None:
    kind = vehicle_type()
    create(shared_ngsi_client, kind, speed=instances([2, 4]))
    response = shared_ngsi_client.post(
        f"{API}/temporal/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": kind}],
            "temporalQ": {"timerel": "after", "timeAt": "2019-01-01T00:00:00Z"},
            "aggrParams": {"aggrMethods": ["avg"], "aggrPeriodDuration": "PT0S"},
        },
    )
    assert response.status_code == 200, response.text
    [entity] = response.json()
    assert [row[0] for row in entity["speed"]["avg"]] == [3]


def test_entities_without_instances_in_the_window_are_left_out(
    shared_ngsi_client: TestClient,
) -> None:
    kind = vehicle_type()
    early = create(shared_ngsi_client, kind, 1, speed=instances([1]))
    late = create(shared_ngsi_client, kind, 2, speed=instances([1, 2, 3]))
    response = shared_ngsi_client.get(
        f"{API}/temporal/entities", params={"type": kind, "timerel": "after", "timeAt": at(1)}
    )
    assert [entity["id"] for entity in response.json()] == [late]
    assert early != late


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/temporal/entities//attrs"),
        ("DELETE", "/temporal/entities//attrs/speed"),
        ("DELETE", "/temporal/entities/urn:ngsi-ld:X:1/attrs//urn:ngsi-ld:attribute:instance:1"),
        ("PATCH", "/temporal/entities//attrs/speed/urn:ngsi-ld:attribute:instance:1"),
        ("DELETE", "/temporal/entities/urn:ngsi-ld:X:1/attrs/%2E%2E"),
        ("DELETE", "/temporal/entities/urn:ngsi-ld:X:1/attrs/%252e%252e"),
        ("DELETE", "/temporal/entities//attrs/speed?datasetId=&deleteAll=false"),
        ("PATCH", "/temporal/entities/urn:ngsi-ld:X:1/attrs/speed/not-a-uri"),
        ("DELETE", "/temporal/entities/urn:ngsi-ld:X:1/attrs/speed/not-a-uri"),
    ],
)
def test_empty_or_dot_path_segments_are_bad_request_data(
    shared_ngsi_client: TestClient, method: str, path: str
) -> None:
    response = shared_ngsi_client.request(method, f"{API}{path}", json={"a": 1})
    problem(response, 400, "BadRequestData")


def test_a_trailing_slash_still_reaches_the_collection(shared_ngsi_client: TestClient) -> None:
    kind = vehicle_type()
    response = shared_ngsi_client.post(
        f"{API}/temporal/entities/",
        json={"id": f"urn:ngsi-ld:{kind}:1", "type": kind, "speed": instances([1])},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/temporal/entities/urn:ngsi-ld:X:1/attrs/speed/", "DELETE"),
        ("/temporal/entities/urn:ngsi-ld:X:1/attrs//urn:ngsi-ld:attribute:instance:1", "DELETE"),
        ("/temporal/entities/urn:ngsi-ld:X:1/attrs", "POST"),
    ],
)
def test_a_method_the_named_resource_does_not_serve_is_405(
    shared_ngsi_client: TestClient, path: str, allowed: str
) -> None:
    response = shared_ngsi_client.patch(f"{API}{path}", json={"value": 1})
    problem(response, 405, "MethodNotAllowed")
    assert response.headers["Allow"] == allowed


def test_datasetid_keeps_only_the_instances_of_those_datasets(
    shared_ngsi_client: TestClient,
) -> None:
    kind = vehicle_type()
    common = "urn:ngsi-ld:Dataset:common"
    speed = [
        *instances([1, 2]),
        *[{**item, "datasetId": common} for item in instances([10, 20], start=2)],
    ]
    both = create(shared_ngsi_client, kind, 1, speed=speed)
    default_only = create(shared_ngsi_client, kind, 2, speed=instances([5]))

    def query(dataset_id: str) -> dict[str, Any]:
        response = shared_ngsi_client.get(
            f"{API}/temporal/entities",
            params={"type": kind, "datasetId": dataset_id, "options": "temporalValues"},
        )
        assert response.status_code == 200, response.text
        return {entity["id"]: entity for entity in response.json()}

    found = query(common)
    assert list(found) == [both]  # the entity without such an instance is left out
    assert found[both]["speed"]["datasetId"] == common
    assert [pair[0] for pair in found[both]["speed"]["values"]] == [10, 20]
    assert sorted(query("@none")) == sorted([both, default_only])
    assert [pair[0] for pair in query("@none")[both]["speed"]["values"]] == [1, 2]

    entity = retrieve(shared_ngsi_client, both, datasetId=common)
    assert values(entity, "speed") == [10, 20]
    problem(
        shared_ngsi_client.get(f"{API}/temporal/entities/{both}", params={"datasetId": "x y"}),
        400,
        "BadRequestData",
    )


def test_an_upsert_unions_types_and_takes_a_deletion_instance(
    shared_ngsi_client: TestClient,
) -> None:
    kind = vehicle_type()
    entity_id = create(shared_ngsi_client, kind, speed=instances([1]))
    deletion = {"type": "Property", "value": "urn:ngsi-ld:null", "observedAt": at(1)}
    upserted = shared_ngsi_client.post(
        f"{API}/temporal/entities",
        json={"id": entity_id, "type": [kind, "Truck"], "speed": [deletion]},
    )
    assert upserted.status_code == 204, upserted.text
    entity = retrieve(shared_ngsi_client, entity_id)
    assert sorted(entity["type"]) == sorted([kind, "Truck"])
    assert values(entity, "speed") == [1, "urn:ngsi-ld:null"]
    current = shared_ngsi_client.get(f"{API}/entities/{entity_id}")
    assert current.status_code == 200
    assert "speed" not in current.json()


def test_a_deleted_attribute_is_read_back_with_timeproperty_deleted_at(
    shared_ngsi_client: TestClient,
) -> None:
    entity_id = create(shared_ngsi_client, vehicle_type(), speed=instances([1, 2]))
    deleted = shared_ngsi_client.delete(f"{API}/entities/{entity_id}/attrs/speed")
    assert deleted.status_code == 204, deleted.text
    entity = retrieve(shared_ngsi_client, entity_id, timeproperty="deletedAt")
    [deletion] = entity["speed"]
    assert deletion["value"] == "urn:ngsi-ld:null"
    assert deletion["deletedAt"].endswith("Z")
    assert set(deletion) == {"type", "value", "instanceId", "deletedAt"}
    simplified = retrieve(
        shared_ngsi_client, entity_id, timeproperty="deletedAt", format="temporalValues"
    )
    assert simplified["speed"]["values"] == [["urn:ngsi-ld:null", deletion["deletedAt"]]]
    assert values(retrieve(shared_ngsi_client, entity_id), "speed") == [1, 2]


def test_a_temporal_entity_keeps_its_scope_and_the_scope_deletion_is_recorded(
    shared_ngsi_client: TestClient,
) -> None:
    kind = vehicle_type()
    entity_id = create(shared_ngsi_client, kind, scope=["/Madrid/Norte"], speed=instances([1]))
    current = shared_ngsi_client.get(f"{API}/entities/{entity_id}")
    assert current.json()["scope"] == "/Madrid/Norte"
    deleted = shared_ngsi_client.delete(f"{API}/entities/{entity_id}/attrs/scope")
    assert deleted.status_code == 204, deleted.text
    [deletion] = retrieve(shared_ngsi_client, entity_id, timeproperty="deletedAt")["scope"]
    assert deletion["type"] == "Property" and deletion["value"] == []
    assert deletion["deletedAt"].endswith("Z")
    assert "scope" not in retrieve(shared_ngsi_client, entity_id)
