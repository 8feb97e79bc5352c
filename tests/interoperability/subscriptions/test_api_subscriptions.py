"""``/subscriptions`` through the assembled application: CRUD, errors, paging, tenants."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos_interoperability.ngsild.negotiation import link_header

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
ENDPOINT = {"uri": "http://127.0.0.1:9/notify", "accept": "application/json"}
CONTEXT = {
    "@context": {"Building": "https://example.org/Building", "height": "https://example.org/height"}
}


def body(**members: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Subscription:{uuid.uuid4()}",
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"format": "keyValues", "endpoint": ENDPOINT},
        **members,
    }


def tenant() -> dict[str, str]:
    """A fresh tenant per test, so tests sharing the database do not see each other."""
    return {"NGSILD-Tenant": f"t{uuid.uuid4().hex[:12]}"}


def problem(response: Any, status: int, type_name: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["type"] == ERRORS + type_name


def test_create_then_retrieve_gives_the_subscription_back(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    sent = body(timeInterval=5, description="every building")
    created = shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{API}/subscriptions/{sent['id']}"
    got = shared_ngsi_client.get(f"{API}/subscriptions/{sent['id']}", headers=headers)
    assert got.status_code == 200
    assert got.json() == {
        **sent,
        "notificationTrigger": ["attributeCreated", "attributeUpdated"],
        "notification": sent["notification"],
        "status": "active",
    }
    assert "Link" in got.headers


def test_a_subscription_without_id_gets_one(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    sent = body()
    del sent["id"]
    created = shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    assert created.status_code == 201
    location = created.headers["Location"]
    assert location.startswith(f"{API}/subscriptions/urn:ngsi-ld:Subscription:")
    assert shared_ngsi_client.get(location, headers=headers).status_code == 200


def test_creating_an_existing_id_is_already_exists(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    sent = body()
    assert (
        shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers).status_code
        == 201
    )
    again = shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    problem(again, 409, "AlreadyExists")


@pytest.mark.parametrize(
    "sent",
    [
        {"type": "Subscription"},
        body(throttling=-1),
        body(timeInterval=5, throttling=1),
        body(notificationTrigger=["entityChanged"]),
        body(q="speed>>"),
        body(expiresAt="2000-01-01T00:00:00Z"),
        body(notification={"format": "keyValues", "showChanges": True, "endpoint": ENDPOINT}),
    ],
)
def test_invalid_subscriptions_are_400(
    shared_ngsi_client: TestClient, sent: dict[str, Any]
) -> None:
    problem(shared_ngsi_client.post(f"{API}/subscriptions", json=sent), 400, "BadRequestData")


def test_malformed_json_is_invalid_request(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.post(
        f"{API}/subscriptions", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    problem(response, 400, "InvalidRequest")


def test_unreachable_context_is_reported_when_creating(shared_ngsi_client: TestClient) -> None:
    response = shared_ngsi_client.post(
        f"{API}/subscriptions",
        json=body(),
        headers={"Link": link_header("http://127.0.0.1:9/ctx.jsonld")},
    )
    problem(response, 504, "LdContextNotAvailable")


def test_unknown_and_invalid_ids(shared_ngsi_client: TestClient) -> None:
    unknown = f"{API}/subscriptions/urn:ngsi-ld:Subscription:unknown"
    problem(shared_ngsi_client.get(unknown), 404, "ResourceNotFound")
    problem(shared_ngsi_client.delete(unknown), 404, "ResourceNotFound")
    problem(shared_ngsi_client.patch(unknown, json={"isActive": False}), 404, "ResourceNotFound")
    problem(shared_ngsi_client.get(f"{API}/subscriptions/not-a-uri"), 400, "BadRequestData")
    problem(shared_ngsi_client.delete(f"{API}/subscriptions/not-a-uri"), 400, "BadRequestData")


def test_update_pauses_resumes_and_changes_members(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    sent = body()
    url = f"{API}/subscriptions/{sent['id']}"
    shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    paused = shared_ngsi_client.patch(url, json={"isActive": False}, headers=headers)
    assert paused.status_code == 204
    assert shared_ngsi_client.get(url, headers=headers).json()["status"] == "paused"
    resumed = shared_ngsi_client.patch(
        url,
        json={"isActive": True, "notification": {"format": "normalized", "endpoint": ENDPOINT}},
        headers=headers,
    )
    assert resumed.status_code == 204
    got = shared_ngsi_client.get(url, headers=headers).json()
    assert got["status"] == "active"
    assert got["notification"]["format"] == "normalized"
    assert got["notification"]["endpoint"] == ENDPOINT
    for fragment in ({"throttling": -3}, {"notification": {"format": "keyValues"}}):
        rejected = shared_ngsi_client.patch(url, json=fragment, headers=headers)
        problem(rejected, 400, "BadRequestData")
    assert "throttling" not in shared_ngsi_client.get(url, headers=headers).json()


def test_a_subscription_expires(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    expires = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    sent = body(expiresAt=expires)
    shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    url = f"{API}/subscriptions/{sent['id']}"
    assert shared_ngsi_client.get(url, headers=headers).json()["status"] == "active"
    time.sleep(1.2)
    assert shared_ngsi_client.get(url, headers=headers).json()["status"] == "expired"


def test_delete_removes_the_subscription(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    sent = body()
    url = f"{API}/subscriptions/{sent['id']}"
    shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    assert shared_ngsi_client.delete(url, headers=headers).status_code == 204
    problem(shared_ngsi_client.get(url, headers=headers), 404, "ResourceNotFound")


def test_query_pages_with_count_and_links(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    ids = []
    for _ in range(3):
        sent = body()
        ids.append(sent["id"])
        shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    page = shared_ngsi_client.get(
        f"{API}/subscriptions", params={"limit": 1, "offset": 1, "count": "true"}, headers=headers
    )
    assert page.status_code == 200
    assert [item["id"] for item in page.json()] == ids[1:2]
    assert page.headers["NGSILD-Results-Count"] == "3"
    links = page.headers.get_list("Link")
    assert f'<{API}/subscriptions?limit=1&offset=0>;rel="prev";type="application/ld+json"' in links
    assert f'<{API}/subscriptions?limit=1&offset=2>;rel="next";type="application/ld+json"' in links
    everything = shared_ngsi_client.get(f"{API}/subscriptions", headers=headers).json()
    assert [item["id"] for item in everything] == ids
    too_many = shared_ngsi_client.get(f"{API}/subscriptions", params={"limit": 5000})
    problem(too_many, 403, "TooManyResults")


def test_tenants_do_not_see_each_others_subscriptions(shared_ngsi_client: TestClient) -> None:
    mine, theirs = tenant(), tenant()
    sent = body()
    shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=mine)
    url = f"{API}/subscriptions/{sent['id']}"
    problem(shared_ngsi_client.get(url, headers=theirs), 404, "ResourceNotFound")
    problem(shared_ngsi_client.delete(url, headers=theirs), 404, "ResourceNotFound")
    assert shared_ngsi_client.get(f"{API}/subscriptions", headers=theirs).json() == []
    assert shared_ngsi_client.get(url, headers=mine).status_code == 200


def test_names_follow_the_context_of_the_reader(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    sent = {**body(watchedAttributes=["height"]), **CONTEXT}
    created = shared_ngsi_client.post(
        f"{API}/subscriptions",
        json=sent,
        headers={**headers, "Content-Type": "application/ld+json"},
    )
    assert created.status_code == 201, created.text
    url = f"{API}/subscriptions/{sent['id']}"
    as_ld = shared_ngsi_client.get(url, headers={**headers, "Accept": "application/ld+json"})
    assert as_ld.headers["Content-Type"].startswith("application/ld+json")
    plain = as_ld.json()
    assert plain["entities"] == [{"type": "https://example.org/Building"}]
    assert plain["watchedAttributes"] == ["https://example.org/height"]
    assert "@context" in plain


def test_sys_attrs_show_creation_and_modification(shared_ngsi_client: TestClient) -> None:
    headers = tenant()
    sent = body()
    shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers)
    got = shared_ngsi_client.get(
        f"{API}/subscriptions/{sent['id']}", params={"options": "sysAttrs"}, headers=headers
    ).json()
    assert got["createdAt"].endswith("Z") and got["modifiedAt"] >= got["createdAt"]


def test_a_version_preference_is_applied_and_changes_nothing(
    shared_ngsi_client: TestClient,
) -> None:
    headers = tenant()
    sent = body()
    assert shared_ngsi_client.post(f"{API}/subscriptions", json=sent, headers=headers).is_success
    url = f"{API}/subscriptions/{sent['id']}"
    plain = shared_ngsi_client.get(url, headers=headers)
    assert "Preference-Applied" not in plain.headers
    for prefer in ("NGSI-LD=1.0", 'respond-async, ngsi-ld="1.0";q=0.5'):
        got = shared_ngsi_client.get(url, headers={**headers, "Prefer": prefer})
        assert got.status_code == 200
        assert got.headers["Preference-Applied"] == "ngsi-ld=1.0"
        assert got.json() == plain.json()
    listed = shared_ngsi_client.get(
        f"{API}/subscriptions", headers={**headers, "Prefer": "ngsi-ld=1.3"}
    )
    assert listed.headers["Preference-Applied"] == "ngsi-ld=1.3"
    unrelated = shared_ngsi_client.get(url, headers={**headers, "Prefer": "respond-async"})
    assert "Preference-Applied" not in unrelated.headers
