"""Notifications end to end: API write → knowledge outbox → bus → notifier → a real receiver.

Every test uses an entity type of its own, so the subscriptions of one test never fire for
another's entities. "Nothing was sent" is checked with a fence: a change that must not
notify is followed by one that must, and the first notification received is the second.
A subscription notifies only the changes made after it was created or last updated, even
when an older change reaches the notifier later.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.interoperability.subscriptions.calls import (
    API,
    NULL,
    create,
    notified_ids,
    status,
    subscribe,
    update,
)
from tests.interoperability.subscriptions.conftest import Receiver

pytestmark = pytest.mark.postgres

FRENCH = "urn:ngsi-ld:Dataset:french-name"


def test_round_trip_with_a_real_http_receiver(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    subscription_id = subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        notification={
            "format": "keyValues",
            "attributes": ["speed"],
            "endpoint": {"receiverInfo": [{"key": "X-Api-Key", "value": "secret-1"}]},
        },
    )
    entity_id = create(notifying_client, entity_type, speed=30, colour="red")
    [received] = receiver.wait_for(1)
    notification = received.body
    assert notification["type"] == "Notification"
    assert notification["id"].startswith("urn:ngsi-ld:Notification:")
    assert notification["subscriptionId"] == subscription_id
    assert notification["notifiedAt"].endswith("Z")
    assert notification["data"] == [{"id": entity_id, "type": entity_type, "speed": 30}]
    assert received.headers["X-Api-Key"] == "secret-1"
    assert received.headers["Content-Type"] == "application/json"
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in received.headers["Link"]

    state = status(notifying_client, subscription_id, until=lambda s: "lastSuccess" in s)
    assert state["status"] == "ok"
    assert state["timesSent"] == 1 and "timesFailed" not in state
    assert state["lastNotification"] <= state["lastSuccess"]


def test_json_ld_notifications_carry_the_context_in_the_body(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        notification={"endpoint": {"accept": "application/ld+json"}},
    )
    create(notifying_client, entity_type, speed=1)
    [received] = receiver.wait_for(1)
    assert received.headers["Content-Type"] == "application/ld+json"
    assert "Link" not in received.headers
    [entity] = received.body["data"]
    assert "@context" in entity
    assert entity["speed"] == {"type": "Property", "value": 1}


def test_watched_attributes_and_q_decide_what_notifies(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        watchedAttributes=["speed"],
        q="speed>50",
        notificationTrigger=["attributeUpdated"],
        notification={"format": "keyValues"},
    )
    fast = create(notifying_client, entity_type, 1, speed=60, colour="red")
    slow = create(notifying_client, entity_type, 2, speed=10)
    fence = create(notifying_client, entity_type, 3, speed=10)
    update(notifying_client, fast, colour="blue")  # matches q, but speed is not touched
    update(notifying_client, slow, speed=20)  # watched, but q does not match
    update(notifying_client, fence, speed=70)  # must notify
    [received] = receiver.wait_for(1)
    assert received.body["data"] == [{"id": fence, "type": entity_type, "speed": 70}]
    assert len(receiver.quiet_for(0.5)) == 1


def test_geo_query_selects_entities_near_a_point(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        geoQ={
            "geometry": "Point",
            "coordinates": [-3.70, 40.42],
            "georel": "near;maxDistance==2000",
        },
    )
    for number, point in ((1, [2.17, 41.39]), (2, [-3.701, 40.421])):  # Barcelona, Madrid
        response = notifying_client.post(
            f"{API}/entities",
            json={
                "id": f"urn:ngsi-ld:{entity_type}:{number}",
                "type": entity_type,
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": point},
                },
            },
        )
        assert response.status_code == 201
    [received] = receiver.wait_for(1)
    assert [item["id"] for item in received.body["data"]] == [f"urn:ngsi-ld:{entity_type}:2"]


def test_show_changes_adds_previous_values(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    entity_id = create(notifying_client, entity_type, name="Eiffel Tower", height=300)
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        notificationTrigger=["attributeUpdated"],
        notification={"showChanges": True},
    )
    update(notifying_client, entity_id, name="Tour Eiffel")
    [received] = receiver.wait_for(1)
    [entity] = received.body["data"]
    assert entity["name"] == {
        "type": "Property",
        "value": "Tour Eiffel",
        "previousValue": "Eiffel Tower",
    }
    assert entity["height"] == {"type": "Property", "value": 300}


def test_deleted_attributes_and_entities_are_notified_with_null(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    entity_id = create(notifying_client, entity_type, name="Old", height=3)
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        notificationTrigger=["attributeDeleted", "entityDeleted"],
    )
    deleted = notifying_client.delete(f"{API}/entities/{entity_id}/attrs/name")
    assert deleted.status_code == 204
    [attribute_deleted] = receiver.wait_for(1)
    assert attribute_deleted.body["data"] == [
        {
            "id": entity_id,
            "type": entity_type,
            "height": {"type": "Property", "value": 3},
            "name": {"type": "Property", "value": NULL},
        }
    ]
    assert notifying_client.delete(f"{API}/entities/{entity_id}").status_code == 204
    entity_deleted = receiver.wait_for(2)[1].body["data"][0]
    assert entity_deleted.pop("deletedAt").endswith("Z")
    # attributeDeleted also fires for the attributes the entity had when it was deleted.
    assert entity_deleted == {
        "id": entity_id,
        "type": entity_type,
        "height": {"type": "Property", "value": NULL},
    }


def test_throttling_drops_changes_inside_the_period(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    entity_id = create(notifying_client, entity_type, speed=0)
    subscribe(notifying_client, entity_type, receiver.url, throttling=1.5)
    update(notifying_client, entity_id, speed=1)
    first = receiver.wait_for(1)[0]
    update(notifying_client, entity_id, speed=2)  # inside the throttling period
    assert len(receiver.quiet_for(0.6)) == 1
    time.sleep(max(0.0, first.at + 1.6 - time.monotonic()))
    update(notifying_client, entity_id, speed=3)
    second = receiver.wait_for(2)[1]
    assert second.body["data"][0]["speed"]["value"] == 3
    assert second.at - first.at >= 1.5


def test_a_paused_subscription_notifies_again_when_resumed(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    entity_id = create(notifying_client, entity_type, speed=0)
    subscription_id = subscribe(notifying_client, entity_type, receiver.url, isActive=False)
    update(notifying_client, entity_id, speed=1)  # while paused: never notified
    resumed = notifying_client.patch(
        f"{API}/subscriptions/{subscription_id}", json={"isActive": True}
    )
    assert resumed.status_code == 204
    update(notifying_client, entity_id, speed=2)
    received = receiver.wait_for(1)
    assert received[0].body["data"][0]["speed"]["value"] == 2


def test_periodic_subscriptions_send_the_current_state(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    entity_id = create(notifying_client, entity_type, speed=5)
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        timeInterval=1,
        notification={"format": "keyValues"},
    )
    first, second = receiver.wait_for(2, timeout=5)[:2]
    assert first.body["data"] == [{"id": entity_id, "type": entity_type, "speed": 5}]
    assert second.body["data"] == first.body["data"]
    assert second.at - first.at >= 0.9


def test_a_failing_receiver_is_reported_in_the_status(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    receiver.status = 500
    subscription_id = subscribe(notifying_client, entity_type, receiver.url)
    create(notifying_client, entity_type, speed=1)
    receiver.wait_for(2)  # the attempt and its retry
    state = status(notifying_client, subscription_id, until=lambda s: s.get("timesFailed", 0) > 0)
    assert state["status"] == "failed"
    assert state["timesFailed"] == 1 and "lastSuccess" not in state


def test_a_stalled_receiver_does_not_delay_another(
    notifying_client: TestClient, receiver: Receiver, stalled_receiver: str, entity_type: str
) -> None:
    subscribe(notifying_client, entity_type, stalled_receiver)
    subscribe(notifying_client, entity_type, receiver.url, notification={"format": "keyValues"})
    started = time.monotonic()
    for number in range(1, 6):
        create(notifying_client, entity_type, number, speed=number)
    expected = {f"urn:ngsi-ld:{entity_type}:{n}" for n in range(1, 6)}
    received = receiver.wait_until(lambda got: notified_ids(got) == expected, timeout=5)
    # The stalled endpoint holds each request for the 2 s timeout, twice; the live one
    # got every change long before the stalled one's first request gave up.
    assert received[-1].at - started < 1.5


def test_notifications_stay_in_their_tenant(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    subscribe(notifying_client, entity_type, receiver.url, headers={"NGSILD-Tenant": tenant})
    create(notifying_client, entity_type, 1, speed=1)  # default tenant: not notified
    create(notifying_client, entity_type, 2, speed=2, headers={"NGSILD-Tenant": tenant})
    [received] = receiver.wait_for(1)
    assert received.headers["NGSILD-Tenant"] == tenant
    assert [item["id"] for item in received.body["data"]] == [f"urn:ngsi-ld:{entity_type}:2"]


def test_sys_attrs_are_included_when_asked(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    subscribe(notifying_client, entity_type, receiver.url, notification={"sysAttrs": True})
    create(notifying_client, entity_type, speed=1)
    [entity] = receiver.wait_for(1)[0].body["data"]
    assert entity["createdAt"].endswith("Z") and "modifiedAt" in entity


def test_a_deleted_entity_keeps_its_system_members_with_sys_attrs(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        notificationTrigger=["entityCreated", "entityDeleted", "attributeDeleted"],
        notification={"sysAttrs": True},
    )
    entity_id = create(notifying_client, entity_type, speed=1)
    [created] = receiver.wait_for(1)[0].body["data"]
    assert notifying_client.delete(f"{API}/entities/{entity_id}").status_code == 204
    [deleted] = receiver.wait_for(2)[1].body["data"]
    assert set(deleted) == {"id", "type", "createdAt", "modifiedAt", "deletedAt", "speed"}
    assert deleted["createdAt"] == created["createdAt"]
    assert deleted["modifiedAt"] == deleted["deletedAt"] >= created["createdAt"]
    # The deleted attribute is Null and keeps its own system members.
    assert deleted["speed"] == {
        "type": "Property",
        "value": NULL,
        "createdAt": created["speed"]["createdAt"],
        "modifiedAt": created["speed"]["modifiedAt"],
        "deletedAt": deleted["deletedAt"],
    }


def names(entity_id: str, entity_type: str) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": entity_type,
        "name": [
            {"type": "Property", "value": "Eiffel Tower"},
            {"type": "Property", "value": "Tour Eiffel", "datasetId": FRENCH},
        ],
    }


def test_deleting_one_dataset_instance_notifies_it_as_null(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    entity_id = f"urn:ngsi-ld:{entity_type}:1"
    assert (
        notifying_client.post(f"{API}/entities", json=names(entity_id, entity_type)).status_code
        == 201
    )
    subscribe(
        notifying_client,
        entity_type,
        receiver.url,
        watchedAttributes=["name"],
        notificationTrigger=["attributeDeleted"],
        notification={"sysAttrs": True},
    )
    deleted = notifying_client.delete(
        f"{API}/entities/{entity_id}/attrs/name", params={"datasetId": FRENCH}
    )
    assert deleted.status_code == 204, deleted.text
    [entity] = receiver.wait_for(1)[0].body["data"]
    kept, gone = sorted(entity["name"], key=lambda item: "datasetId" in item)
    assert kept["value"] == "Eiffel Tower" and "deletedAt" not in kept
    assert gone["datasetId"] == FRENCH and gone["value"] == NULL
    assert gone["deletedAt"].endswith("Z")


def test_the_dataset_filter_keeps_only_the_chosen_instances(
    notifying_client: TestClient, receiver: Receiver, entity_type: str
) -> None:
    subscribe(notifying_client, entity_type, receiver.url, datasetId=[FRENCH])
    entity_id = f"urn:ngsi-ld:{entity_type}:1"
    assert (
        notifying_client.post(f"{API}/entities", json=names(entity_id, entity_type)).status_code
        == 201
    )
    [entity] = receiver.wait_for(1)[0].body["data"]
    assert entity["name"] == {"type": "Property", "value": "Tour Eiffel", "datasetId": FRENCH}
