"""Notifications limited to what their subscriber may read (level 1, ADR 0039).

The assembled platform (knowledge, interoperability, support) with ``CITYOS_AUTH=keycloak``
against the loopback OpenID Connect issuer, real PostgreSQL+PostGIS, the notifier running
and a real HTTP receiver. A ``watcher`` role may read parking spots and people, and of a
person only the age. An administrator's unrestricted subscription to the same receiver
is the fence: once it has been notified of a change, a notification the watcher should
not get would have been sent in the same batch.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.embedded import EmbeddedPostgres
from cityos.layers import load_layers
from cityos.migrate import upgrade
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from tests.fixtures.services import POSTGIS_TEMPLATE
from tests.fixtures.support import LoopbackIssuer
from tests.interoperability.subscriptions.calls import API
from tests.interoperability.subscriptions.conftest import (
    NOTIFIER_ENVIRONMENT,
    Received,
    Receiver,
)

pytestmark = pytest.mark.postgres

LAYERS = ("knowledge", "interoperability", "support")
TEMPLATE = "cityos_scoped_notifications_template"
TENANT = "citya"
FORBIDDEN = "https://uri.etsi.org/ngsi-ld/errors/Forbidden"

WATCHER = {
    "permissions": ["subscriptions:read", "subscriptions:write", "entities:read"],
    "read_types": ["ParkingSpot", "Person"],
    "attributes": {"Person": ["age"]},
}

Headers = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def template(postgres_server: EmbeddedPostgres) -> Iterator[str]:
    postgres_server.create_database(TEMPLATE, template=POSTGIS_TEMPLATE)
    upgrade(postgres_server.url(TEMPLATE), load_layers(LAYERS))
    yield TEMPLATE
    postgres_server.drop_database(TEMPLATE)


@pytest.fixture
def headers(oidc_issuer: LoopbackIssuer) -> Headers:
    def make(role: str) -> dict[str, str]:
        token = oidc_issuer.token(roles=(role,), subject=role, tenants=(TENANT,))
        return {"Authorization": f"Bearer {token}", "NGSILD-Tenant": TENANT}

    return make


@pytest.fixture
def client(
    postgres_server: EmbeddedPostgres,
    template: str,
    oidc_issuer: LoopbackIssuer,
    monkeypatch: pytest.MonkeyPatch,
    headers: Headers,
) -> Iterator[TestClient]:
    """The started platform with the watcher role in its policies."""
    name = f"test_scoped_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name, template=template)
    monkeypatch.setenv("CITYOS_AUDIT_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
    for variable, value in NOTIFIER_ENVIRONMENT.items():
        monkeypatch.setenv(variable, value)
    settings = PlatformSettings(env="production", auth="keycloak", auth_issuer=oidc_issuer.url)
    built = build_platform(
        settings, load_layers(LAYERS), database_url=postgres_server.url(name), bus=MemoryBus()
    )
    try:
        with TestClient(create_app(built)) as client:
            admin = headers("platform-admin")
            policy = client.get("/admin/api/config/security.policies", headers=admin).json()
            policy["value"]["roles"]["watcher"] = WATCHER
            stored = client.put(
                "/admin/api/policies", headers=admin, json={"value": policy["value"]}
            )
            assert stored.status_code == 200, stored.text
            watcher = headers("watcher")
            deadline = time.monotonic() + 10
            while client.get(f"{API}/subscriptions", headers=watcher).status_code != 200:
                assert time.monotonic() < deadline, "the watcher policy was never applied"
                time.sleep(0.05)
            yield client
    finally:
        postgres_server.drop_database(name)


def subscribe(
    client: TestClient, headers: dict[str, str], url: str, types: list[str], **members: Any
) -> Any:
    notification = members.pop("notification", {})
    body = {
        "type": "Subscription",
        "entities": [{"type": name} for name in types],
        "notification": {**notification, "endpoint": {"uri": url}},
        **members,
    }
    return client.post(f"{API}/subscriptions", json=body, headers=headers)


def subscription_id(response: Any) -> str:
    assert response.status_code == 201, response.text
    return str(response.headers["Location"].rsplit("/", 1)[-1])


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def write(client: TestClient, headers: dict[str, str], entity: dict[str, Any]) -> None:
    response = client.post(f"{API}/entities", json=entity, headers=headers)
    assert response.status_code == 201, response.text


def entities_of(requests: list[Received], subscription: str) -> list[dict[str, Any]]:
    return [
        item
        for request in requests
        if request.body["subscriptionId"] == subscription
        for item in request.body["data"]
    ]


def test_a_subscriber_is_notified_only_of_the_types_it_may_read(
    client: TestClient, receiver: Receiver, headers: Headers
) -> None:
    watcher, admin = headers("watcher"), headers("platform-admin")
    both = ["WaterMeter", "ParkingSpot"]
    created = {"notificationTrigger": ["entityCreated"]}
    watching = subscription_id(subscribe(client, watcher, receiver.url, both, **created))
    fence = subscription_id(subscribe(client, admin, receiver.url, both, **created))

    write(client, admin, {"id": "urn:ngsi-ld:WaterMeter:1", "type": "WaterMeter", "v": prop(1)})
    write(client, admin, {"id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot", "s": prop(2)})

    def both_seen(got: list[Received]) -> bool:
        return len(entities_of(got, fence)) == 2 and bool(entities_of(got, watching))

    receiver.wait_until(both_seen)
    got = receiver.quiet_for(0.5)
    assert {e["id"] for e in entities_of(got, fence)} == {
        "urn:ngsi-ld:WaterMeter:1",
        "urn:ngsi-ld:ParkingSpot:1",
    }
    assert [e["id"] for e in entities_of(got, watching)] == ["urn:ngsi-ld:ParkingSpot:1"]
    # Selecting only types it may not read is refused, like a write to them.
    refused = subscribe(client, watcher, receiver.url, ["WaterMeter"])
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"] == FORBIDDEN


def test_hidden_attributes_are_not_notified(
    client: TestClient, receiver: Receiver, headers: Headers
) -> None:
    watcher, admin = headers("watcher"), headers("platform-admin")
    watching = {
        fmt: subscription_id(
            subscribe(client, watcher, receiver.url, ["Person"], notification={"format": fmt})
        )
        for fmt in ("normalized", "concise", "keyValues")
    }
    # Filtered: the entity comes from the knowledge facade's query, scoped in SQL.
    watching["filtered"] = subscription_id(
        subscribe(client, watcher, receiver.url, ["Person"], q="age>30")
    )
    fence = subscription_id(
        subscribe(client, admin, receiver.url, ["Person"], notification={"format": "keyValues"})
    )
    person = "urn:ngsi-ld:Person:1"
    write(client, admin, {"id": person, "type": "Person", "name": prop("Ana"), "age": prop(40)})

    def patch(**attributes: Any) -> None:
        body = {name: prop(value) for name, value in attributes.items()}
        response = client.patch(f"{API}/entities/{person}/attrs", json=body, headers=admin)
        assert response.status_code == 204, response.text

    def fence_got(count: int) -> Callable[[list[Received]], bool]:
        def done(got: list[Received]) -> bool:
            return len(entities_of(got, fence)) >= count and all(
                len(entities_of(got, sid)) >= min(count, 2) for sid in watching.values()
            )

        return done

    receiver.wait_until(fence_got(1))
    patch(name="Eva")  # only a hidden attribute changes: the watcher hears nothing
    patch(age=41)
    receiver.wait_until(fence_got(3))
    got = receiver.quiet_for(0.5)

    assert [e["name"] for e in entities_of(got, fence)] == ["Ana", "Eva", "Eva"]
    for fmt, sid in watching.items():
        notified = entities_of(got, sid)
        assert len(notified) == 2, (fmt, notified)
        assert all("name" not in entity for entity in notified), (fmt, notified)
        ages = [
            e["age"]["value"] if fmt in ("normalized", "filtered") else e["age"] for e in notified
        ]
        assert ages == [40, 41], (fmt, notified)
