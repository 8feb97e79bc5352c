"""Level-1 authorization end to end: a policy edited through ``/admin/api`` decides, in the
knowledge layer's SQL, which tenants, entity types and attributes an NGSI-LD caller sees.

Real PostgreSQL+PostGIS, the assembled platform (knowledge, interoperability and support
layers) with ``CITYOS_AUTH=keycloak`` against the loopback OpenID Connect issuer.
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
from cityos_kernel.events.topics import AUDIT
from cityos_kernel.settings import PlatformSettings
from tests.fixtures.services import POSTGIS_TEMPLATE
from tests.fixtures.support import LoopbackIssuer

pytestmark = pytest.mark.postgres

LAYERS = ("knowledge", "interoperability", "support")
TEMPLATE = "cityos_scope_template"
CITY_A, CITY_B = "citya", "cityb"
ENTITIES = "/ngsi-ld/v1/entities"
FORBIDDEN = "https://uri.etsi.org/ngsi-ld/errors/Forbidden"

#: A vertical application that manages parking and may see people's age, nothing else.
PARKING_APP = {
    "permissions": ["entities:read", "entities:write", "temporal:read"],
    "read_types": ["ParkingSpot", "Person"],
    "write_types": ["ParkingSpot"],
    "attributes": {"Person": ["age"]},
}

Client = tuple[TestClient, MemoryBus]
Headers = Callable[..., dict[str, str]]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def headers(oidc_issuer: LoopbackIssuer) -> Headers:
    def make(*roles: str, tenant: str = CITY_A, subject: str = "someone") -> dict[str, str]:
        token = oidc_issuer.token(roles=roles, subject=subject, tenants=(CITY_A,))
        return {"Authorization": f"Bearer {token}", "NGSILD-Tenant": tenant}

    return make


@pytest.fixture(scope="module")
def scope_template(postgres_server: EmbeddedPostgres) -> Iterator[str]:
    """A database with the three layers' migrations, copied for each test."""
    postgres_server.create_database(TEMPLATE, template=POSTGIS_TEMPLATE)
    upgrade(postgres_server.url(TEMPLATE), load_layers(LAYERS))
    yield TEMPLATE
    postgres_server.drop_database(TEMPLATE)


@pytest.fixture
def database(postgres_server: EmbeddedPostgres, scope_template: str) -> Iterator[str]:
    name = f"test_scope_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name, template=scope_template)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def platform(
    database: str,
    oidc_issuer: LoopbackIssuer,
    monkeypatch: pytest.MonkeyPatch,
    headers: Headers,
) -> Iterator[Client]:
    """The platform with the parking-app policy in force and a few entities in two tenants."""
    monkeypatch.setenv("CITYOS_AUDIT_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
    settings = PlatformSettings(env="production", auth="keycloak", auth_issuer=oidc_issuer.url)
    bus = MemoryBus()
    built = build_platform(settings, load_layers(LAYERS), database_url=database, bus=bus)
    with TestClient(create_app(built)) as client:
        admin = headers("platform-admin")
        policy = client.get("/admin/api/config/security.policies", headers=admin).json()
        policy["value"]["roles"]["parking-app"] = PARKING_APP
        stored = client.put("/admin/api/policies", headers=admin, json={"value": policy["value"]})
        assert stored.status_code == 200, stored.text
        for tenant, entity in [
            (CITY_A, parking(1)),
            (CITY_A, person(1)),
            (CITY_A, {"id": "urn:ngsi-ld:WaterMeter:1", "type": "WaterMeter", "name": prop("m")}),
            (CITY_B, parking(7)),
        ]:
            created = client.post(
                ENTITIES, json=entity, headers=headers("platform-admin", tenant=tenant)
            )
            assert created.status_code == 201, created.text
        app = headers("parking-app")
        assert eventually(lambda: client.get("/ngsi-ld/v1/types", headers=app).status_code == 200)
        yield client, bus


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def parking(number: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:ParkingSpot:{number}",
        "type": "ParkingSpot",
        "status": prop("free"),
    }


def person(number: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Person:{number}",
        "type": "Person",
        "name": prop("Ana"),
        "age": prop(40),
    }


def test_a_subject_sees_only_its_types_and_attributes(platform: Client, headers: Headers) -> None:
    client, _ = platform
    app = headers("parking-app")
    every_type = {"type": "ParkingSpot,Person,WaterMeter"}
    found = client.get(ENTITIES, params=every_type, headers=app)
    assert found.status_code == 200, found.text
    assert [(e["id"], sorted(e)) for e in found.json()] == [
        ("urn:ngsi-ld:ParkingSpot:1", ["id", "status", "type"]),
        ("urn:ngsi-ld:Person:1", ["age", "id", "type"]),
    ]
    # The administrator sees everything, names included.
    admin = client.get(ENTITIES, params=every_type, headers=headers("platform-admin")).json()
    assert len(admin) == 3 and "name" in admin[1]
    assert client.get(f"{ENTITIES}/urn:ngsi-ld:WaterMeter:1", headers=app).status_code == 404
    one = client.get(f"{ENTITIES}/urn:ngsi-ld:Person:1", headers=app).json()
    assert "name" not in one and one["age"]["value"] == 40
    # A hidden attribute cannot be probed with q.
    probe = client.get(ENTITIES, params={"q": 'name=="Ana"'}, headers=app)
    assert probe.status_code == 200 and probe.json() == []
    types = client.get("/ngsi-ld/v1/types", headers=app).json()
    assert sorted(types["typeList"]) == ["ParkingSpot", "Person"]
    attributes = client.get("/ngsi-ld/v1/attributes", headers=app).json()
    assert sorted(attributes["attributeList"]) == ["age", "status"]


def test_a_subject_cannot_write_other_types(platform: Client, headers: Headers) -> None:
    client, bus = platform
    app = headers("parking-app", subject="parking-1")
    audit = bus.subscribe("audit-reader", [AUDIT.name])
    refused = client.post(ENTITIES, json=person(2), headers=app)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"] == FORBIDDEN
    assert "Person" in refused.json()["detail"]
    patched = client.patch(
        f"{ENTITIES}/urn:ngsi-ld:Person:1/attrs", json={"age": prop(41)}, headers=app
    )
    assert patched.status_code == 403
    deleted = client.delete(f"{ENTITIES}/urn:ngsi-ld:WaterMeter:1", headers=app)
    assert deleted.status_code == 403
    batch = client.post(
        "/ngsi-ld/v1/entityOperations/upsert", json=[parking(3), person(3)], headers=app
    )
    assert batch.status_code == 207, batch.text
    assert batch.json()["success"] == ["urn:ngsi-ld:ParkingSpot:3"]
    assert [e["error"]["status"] for e in batch.json()["errors"]] == [403]
    assert client.post(ENTITIES, json=parking(2), headers=app).status_code == 201
    # Nothing of the refused writes reached the store.
    admin = headers("platform-admin")
    assert client.get(f"{ENTITIES}/urn:ngsi-ld:Person:2", headers=admin).status_code == 404
    assert (
        client.get(f"{ENTITIES}/urn:ngsi-ld:Person:1", headers=admin).json()["age"]["value"] == 40
    )
    # One authorization (one audit event) per request, although the route asks twice.
    events = [AUDIT.decode(d.value).payload for d in audit.poll(timeout=1.0)]
    mine = [(e.target, e.outcome) for e in events if e.subject == "parking-1"]
    posts = [outcome for target, outcome in mine if target == "POST /ngsi-ld/v1/entities"]
    assert posts == ["failure", "success"]  # the refused one, then the created one
    assert ("PATCH /ngsi-ld/v1/entities/urn:ngsi-ld:Person:1/attrs", "failure") in mine


def test_another_tenants_data_is_invisible(platform: Client, headers: Headers) -> None:
    client, _ = platform
    for roles in [("parking-app",), ("manager",)]:
        other = headers(*roles, tenant=CITY_B)
        answer = client.get(ENTITIES, params={"type": "ParkingSpot"}, headers=other)
        assert answer.status_code == 403, answer.text
        assert CITY_B in answer.json()["detail"]
        assert client.get(f"{ENTITIES}/urn:ngsi-ld:ParkingSpot:7", headers=other).status_code == 403
    # In its own tenant the subject does not find tenant B's entity either.
    own = headers("parking-app")
    assert client.get(f"{ENTITIES}/urn:ngsi-ld:ParkingSpot:7", headers=own).status_code == 404
    ids = [
        e["id"] for e in client.get(ENTITIES, params={"type": "ParkingSpot"}, headers=own).json()
    ]
    assert ids == ["urn:ngsi-ld:ParkingSpot:1"]
