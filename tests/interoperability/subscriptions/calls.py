"""Calls the subscription tests make on the API, and waiting for the notifier's status."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.interoperability.subscriptions.conftest import Received

API = "/ngsi-ld/v1"
NULL = "urn:ngsi-ld:null"


def subscribe(client: TestClient, entity_type: str, url: str, **members: Any) -> str:
    notification = members.pop("notification", {})
    headers = members.pop("headers", {})
    body = {
        "type": "Subscription",
        "entities": [{"type": entity_type}],
        "notification": {
            **notification,
            "endpoint": {"uri": url, **notification.pop("endpoint", {})},
        },
        **members,
    }
    response = client.post(f"{API}/subscriptions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.headers["Location"].rsplit("/", 1)[-1])


def create(client: TestClient, entity_type: str, number: int = 1, **attributes: Any) -> str:
    entity_id = f"urn:ngsi-ld:{entity_type}:{number}"
    headers = attributes.pop("headers", {})
    body = {
        "id": entity_id,
        "type": entity_type,
        **{name: {"type": "Property", "value": value} for name, value in attributes.items()},
    }
    response = client.post(f"{API}/entities", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return entity_id


def update(client: TestClient, entity_id: str, **attributes: Any) -> None:
    body = {name: {"type": "Property", "value": value} for name, value in attributes.items()}
    response = client.patch(f"{API}/entities/{entity_id}/attrs", json=body)
    assert response.status_code == 204, response.text


def status(
    client: TestClient, subscription_id: str, until: Callable[[Any], bool], timeout: float = 10.0
) -> Any:
    """The subscription's notification status once ``until(status)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        notification = client.get(f"{API}/subscriptions/{subscription_id}").json()["notification"]
        if until(notification) or time.monotonic() > deadline:
            return notification
        time.sleep(0.1)


def notified_ids(requests: list[Received]) -> set[str]:
    return {item["id"] for request in requests for item in request.body["data"]}
