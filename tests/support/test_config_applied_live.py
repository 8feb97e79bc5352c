"""A configuration change made through ``/admin/api`` is applied by another running process
as soon as it is broadcast on ``support.config.changed.v1`` — on the in-memory bus and on a
real Kafka-protocol broker (Tansu) — with no restart and no periodic re-read involved.

Two platforms share one database: the "support process" serves ``/admin/api``; the "API
process" serves the NGSI-LD API and knows the policies only through its own copy.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.layers import load_layers
from cityos.migrate import upgrade
from cityos_kernel.bus import ConsumerTuning, KafkaBus, MemoryBus
from cityos_kernel.bus.port import Bus
from cityos_kernel.events.topics import CONFIG_CHANGED
from cityos_kernel.settings import PlatformSettings
from tests.fixtures.support import LoopbackIssuer

TENANT = "citya"
TUNING = ConsumerTuning(
    session_timeout_ms=2000, heartbeat_interval_ms=500, max_poll_interval_ms=20_000
)


def eventually(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.slow]),
    ]
)
def buses(request: pytest.FixtureRequest) -> Iterator[tuple[Bus, Bus]]:
    """One bus per process: the same MemoryBus twice, or two clients of the Tansu broker."""
    if request.param == "memory":
        shared = MemoryBus()
        yield shared, shared
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    yield (
        KafkaBus(bootstrap, partitions=3, consumer_tuning=TUNING),
        KafkaBus(bootstrap, partitions=3, consumer_tuning=TUNING),
    )


@pytest.mark.postgres
def test_a_policy_change_reaches_a_running_process_through_the_broadcast(
    buses: tuple[Bus, Bus],
    database_url: str,
    oidc_issuer: LoopbackIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CITYOS_AUDIT_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
    # No periodic re-read during the test: only the broadcast can carry the change.
    monkeypatch.setenv("CITYOS_AUTH_POLICY_REFRESH_SECONDS", "3600")
    upgrade(database_url, load_layers(("knowledge", "interoperability", "support")))
    settings = PlatformSettings(env="production", auth="keycloak", auth_issuer=oidc_issuer.url)
    support_bus, api_bus = buses
    support_process = build_platform(
        settings, load_layers(("support",)), database_url=database_url, bus=support_bus
    )
    api_process = build_platform(
        settings,
        load_layers(("knowledge", "interoperability")),
        database_url=database_url,
        bus=api_bus,
    )

    def headers(*roles: str) -> dict[str, str]:
        token = oidc_issuer.token(roles=roles, tenants=(TENANT,))
        return {"Authorization": f"Bearer {token}", "NGSILD-Tenant": TENANT}

    admin, manager = headers("platform-admin"), headers("manager")
    broadcast = support_bus.subscribe("test-config-reader", [CONFIG_CHANGED.name])
    with (
        TestClient(create_app(support_process)) as support,
        TestClient(create_app(api_process)) as api,
    ):
        entity = {"id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot"}
        assert api.post("/ngsi-ld/v1/entities", json=entity, headers=admin).status_code == 201
        # The API process has read the policies once (version 0, the defaults).
        assert api.get("/ngsi-ld/v1/types", headers=manager).status_code == 200

        policy = support.get("/admin/api/config/security.policies", headers=admin).json()
        policy["value"]["roles"]["manager"]["permissions"].remove("entities:read")
        changed = support.put(
            "/admin/api/policies",
            headers=admin,
            json={"value": policy["value"], "comment": "managers lose entity reads"},
        )
        assert changed.status_code == 200, changed.text

        published = [CONFIG_CHANGED.decode(d.value).payload for d in broadcast.poll(timeout=10)]
        assert [(p.key, p.version) for p in published] == [("security.policies", 1)]
        assert eventually(
            lambda: api.get("/ngsi-ld/v1/types", headers=manager).status_code == 403,
            timeout=30,
        )
        # Other roles are untouched by the change.
        assert api.get("/ngsi-ld/v1/types", headers=headers("operator")).status_code == 200
