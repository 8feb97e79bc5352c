"""Subscription documents: what a client may send, and the defaults the broker applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityos_interoperability.ngsild.errors import BadRequestDataError
from cityos_interoperability.subscriptions.model import (
    Subscription,
    check_subscription,
    merge_subscription,
)
from cityos_knowledge.service import KnowledgeError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ENDPOINT = {"uri": "http://127.0.0.1:9999/notify"}
VALID: dict[str, Any] = {
    "type": "Subscription",
    "entities": [{"type": "Building"}],
    "notification": {"endpoint": ENDPOINT},
}


def with_members(**members: Any) -> dict[str, Any]:
    return {**VALID, **members}


def with_notification(**members: Any) -> dict[str, Any]:
    return {**VALID, "notification": {"endpoint": ENDPOINT, **members}}


def test_a_minimal_subscription_gets_an_id_and_the_spec_defaults() -> None:
    document = check_subscription(VALID, now=NOW)
    assert document["id"].startswith("urn:ngsi-ld:Subscription:")
    subscription = Subscription.from_document(None, document, None)
    assert subscription.triggers == {"attributeCreated", "attributeUpdated"}
    assert subscription.is_active and subscription.status(NOW) == "active"
    assert subscription.notification.format == "normalized"
    assert subscription.notification.endpoint.accept == "application/json"


def test_read_only_and_unknown_members_are_dropped() -> None:
    document = check_subscription(
        with_members(
            status="expired",
            __context="http://evil",
            notification={"endpoint": ENDPOINT, "timesSent": 42, "status": "failed"},
        ),
        now=NOW,
    )
    assert "status" not in document and "__context" not in document
    assert set(document["notification"]) == {"endpoint"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {**VALID, "type": "Subscriptions"},
        {"type": "Subscription", "notification": {"endpoint": ENDPOINT}},
        with_members(id="not a uri"),
        with_members(entities=[]),
        with_members(entities=[{"id": "urn:ngsi-ld:Building:1"}]),
        with_members(entities=[{"type": "Building", "idPattern": "(unclosed"}]),
        with_members(entities=[{"type": "Building", "id": "no uri"}]),
        with_members(watchedAttributes=[]),
        with_members(notificationTrigger=["entityChanged"]),
        with_members(timeInterval=10, watchedAttributes=["speed"]),
        with_members(timeInterval=10, throttling=5),
        with_members(throttling=-1),
        with_members(timeInterval=0),
        with_members(expiresAt="2000-01-01T00:00:00Z"),
        with_members(expiresAt="tomorrow"),
        with_members(isActive="yes"),
        with_members(q="(("),
        with_members(csf="(("),
        with_members(scopeQ="no-slash"),
        with_members(geoQ={"geometry": "Point", "georel": "near;maxDistance==10"}),
        with_members(jsonldContext="not a uri"),
        {key: value for key, value in VALID.items() if key != "notification"},
        with_notification(format="compact"),
        with_notification(format="keyValues", showChanges=True),
        with_notification(format="simplified", showChanges=True),
        with_notification(attributes=[]),
        with_notification(pick=["a"], omit=["b"]),
        with_notification(pick=["a"], attributes=["b"]),
        {**VALID, "notification": {"endpoint": {"uri": "ftp://example.org/x"}}},
        {**VALID, "notification": {"endpoint": {"uri": "notify-me"}}},
        {**VALID, "notification": {"endpoint": {**ENDPOINT, "accept": "text/plain"}}},
        {**VALID, "notification": {"endpoint": {**ENDPOINT, "receiverInfo": [{"key": "a"}]}}},
        {
            **VALID,
            "notification": {"endpoint": {**ENDPOINT, "receiverInfo": [{"key": "a", "value": 1}]}},
        },
        {
            **VALID,
            "notification": {
                "endpoint": {
                    "uri": "mqtt://127.0.0.1/topic",
                    "notifierInfo": [{"key": "MQTT-QoS", "value": "3"}],
                }
            },
        },
    ],
)
def test_invalid_subscriptions_are_bad_request_data(body: dict[str, Any]) -> None:
    with pytest.raises((BadRequestDataError, KnowledgeError)) as raised:
        check_subscription(body, now=NOW)
    status = getattr(raised.value, "status", None)
    assert status == 400


def test_watched_attributes_alone_select_entities() -> None:
    body = {
        "type": "Subscription",
        "watchedAttributes": ["speed"],
        "notification": VALID["notification"],
    }
    subscription = Subscription.from_document(None, check_subscription(body, now=NOW), None)
    assert subscription.entities == () and subscription.watched_attributes == {"speed"}


def test_expiry_and_pause_give_the_status() -> None:
    later = (NOW + timedelta(seconds=30)).isoformat()
    document = check_subscription(with_members(expiresAt=later, isActive=False), now=NOW)
    subscription = Subscription.from_document("tenant-a", document, None)
    assert subscription.status(NOW) == "paused"
    assert subscription.status(NOW + timedelta(seconds=31)) == "expired"


def test_geoq_becomes_query_parameters() -> None:
    document = check_subscription(
        with_members(
            geoQ={"geometry": "Point", "coordinates": [1.5, 2], "georel": "near;maxDistance==10"}
        ),
        now=NOW,
    )
    parameters = Subscription.from_document(None, document, None).filter_parameters()
    assert parameters == {
        "geometry": "Point",
        "coordinates": "[1.5,2]",
        "georel": "near;maxDistance==10",
    }


def test_an_update_replaces_members_and_null_removes_one() -> None:
    document = check_subscription(with_members(throttling=5, q="speed>3"), now=NOW)
    merged = merge_subscription(
        document,
        {"notification": {"format": "keyValues", "endpoint": ENDPOINT}, "throttling": None},
        now=NOW,
    )
    assert merged["notification"] == {"endpoint": ENDPOINT, "format": "keyValues"}
    assert "throttling" not in merged and merged["q"] == "speed>3"


@pytest.mark.parametrize(
    "fragment",
    [
        {},
        {"id": "urn:ngsi-ld:Subscription:other"},
        {"type": "Entity"},
        {"throttling": -2},
        {"notification": {"format": "keyValues"}},
        {"notification": {"endpoint": None}},
    ],
)
def test_invalid_updates_are_bad_request_data(fragment: dict[str, Any]) -> None:
    document = check_subscription(VALID, now=NOW)
    with pytest.raises(BadRequestDataError):
        merge_subscription(document, fragment, now=NOW)


def test_q_is_decoded_like_a_query_string() -> None:
    document = check_subscription(with_members(q='name=="Eiffel%20Tower"'), now=NOW)
    subscription = Subscription.from_document(None, document, None)
    assert subscription.filter_parameters() == {"q": 'name=="Eiffel Tower"'}
    assert document["q"] == 'name=="Eiffel%20Tower"'  # kept as written
