"""The composition root and the platform routes, on real PostgreSQL and Mosquitto."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos_kernel.bus import MemoryBus, Record
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import OBSERVATIONS
from cityos_kernel.settings import PlatformSettings
from tests.runtime.layers_for_tests import ExampleLayer


def settings(**overrides: object) -> PlatformSettings:
    return PlatformSettings(env="development", auth="off", **overrides)  # type: ignore[arg-type]


@pytest.mark.postgres
@pytest.mark.mqtt
def test_ready_names_every_dependency_when_all_are_up(database_url: str, mqtt_url: str) -> None:
    platform = build_platform(
        settings(), [ExampleLayer()], database_url=database_url, mqtt_url=mqtt_url, bus=MemoryBus()
    )
    with TestClient(create_app(platform)) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert set(checks) == {"database", "bus", "mqtt", "example"}
    assert all(check["status"] == "up" for check in checks.values())
    assert "PostGIS" in checks["database"]["detail"]
    assert "MQTT" in checks["mqtt"]["detail"]


@pytest.mark.mqtt
def test_ready_is_503_and_names_what_is_down(mqtt_url: str) -> None:
    platform = build_platform(
        settings(),
        [ExampleLayer(ready=False)],
        database_url="postgresql://nobody@127.0.0.1:1/none",
        mqtt_url="mqtt://127.0.0.1:1",
        bus=MemoryBus(),
    )
    with TestClient(create_app(platform)) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["status"] == "down"
    assert body["checks"]["mqtt"]["status"] == "down"
    assert body["checks"]["example"] == {
        "status": "down",
        "detail": "RuntimeError: example store offline",
    }
    assert body["checks"]["bus"]["status"] == "up"


def test_layer_parts_are_mounted_started_and_stopped() -> None:
    layer = ExampleLayer()
    bus = MemoryBus()
    platform = build_platform(settings(), [layer], bus=bus)
    assert layer.context is not None
    assert layer.context.bus is bus
    with TestClient(create_app(platform)) as client:
        assert layer.service.events == ["start"]
        payload = ObservationV1(
            entity_id="urn:ngsi-ld:Thing:1",
            entity_type="Thing",
            attributes=[ObservedAttribute(name="x", value=1, observed_at=datetime.now(UTC))],
        )
        envelope = OBSERVATIONS.envelope(payload, source="test")
        bus.publish(
            [Record(OBSERVATIONS.name, "urn:ngsi-ld:Thing:1", OBSERVATIONS.encode(envelope))]
        )
        deadline = time.monotonic() + 5
        while not layer.handled and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/example/things").json() == ["urn:ngsi-ld:Thing:1"]
    assert layer.service.events == ["start", "stop"]
    assert bus.committed("example-group") and sum(bus.committed("example-group").values()) == 1


def test_metrics_expose_http_and_bus_counters() -> None:
    platform = build_platform(settings(), [ExampleLayer()], bus=MemoryBus())
    with TestClient(create_app(platform)) as client:
        client.get("/example/open")
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'cityos_http_requests_total{method="GET",route="/example/open",status="200"}' in (
        metrics.text
    )
    assert "cityos_bus_consumed_total" in metrics.text


def test_openapi_has_a_summary_on_every_route() -> None:
    platform = build_platform(settings(), [ExampleLayer()], bus=MemoryBus())
    spec = TestClient(create_app(platform, manage_lifecycle=False)).get("/openapi.json").json()
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert operations
    assert all(op.get("summary") for op in operations), operations
