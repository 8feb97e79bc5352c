"""While the bus does not confirm, nothing is acknowledged and nothing is lost."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from cityos_acquisition.layer import AcquisitionParts, build_parts
from cityos_acquisition.registry.schemas import GroupIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.bus.port import PublishError, Record
from cityos_kernel.events.topics import OBSERVATIONS
from tests.fixtures.acquisition import publish_mqtt, read_topic, wait_for


class OutageBus(MemoryBus):
    """An in-memory bus that refuses to confirm while ``down`` is set (a broker outage)."""

    def __init__(self) -> None:
        super().__init__(partitions=1)
        self.down = True
        self.refused = 0

    def publish(self, records: Sequence[Record]) -> None:
        if self.down and any(r.topic == OBSERVATIONS.name for r in records):
            self.refused += 1
            raise PublishError("bus unavailable")
        super().publish(records)


def build(mqtt_url: str | None) -> tuple[OutageBus, AcquisitionParts, str]:
    bus = OutageBus()
    tag = uuid.uuid4().hex[:8]
    settings = AcquisitionSettings(mqtt_client_id=f"outage-{tag}", registry_cache_ttl=0)
    wired = build_parts(bus, MemoryRegistryStore(), settings, mqtt_url)
    wired.registry.create_groups(Scope("t", "/"), [GroupIn(apikey=tag, entity_type="Thing")])
    return bus, wired, tag


@pytest.mark.mqtt
def test_mqtt_messages_wait_unacknowledged_until_the_bus_is_back(mqtt_url: str) -> None:
    bus, wired, tag = build(mqtt_url)
    service = wired.mqtt
    assert service is not None
    service._retry_backoff = (0.05, 0.2)
    service.start()
    try:
        service.wait_connected()
        publish_mqtt(mqtt_url, [(f"/json/{tag}/meter/attrs", b'{"v": 1}')])
        wait_for(lambda: bus.refused >= 3)
        assert service.acknowledged == 0
        bus.down = False
        wait_for(lambda: service.acknowledged == 1)
        (observation,) = read_topic(bus, OBSERVATIONS.name)
        assert observation.payload.attributes[0].value == 1
    finally:
        service.stop()


def test_http_answers_503_while_the_bus_does_not_confirm() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    bus, wired, tag = build(None)
    client = TestClient(FastAPI())
    client.app.include_router(wired.parts.routers[1])  # type: ignore[attr-defined]
    refused = client.post(f"/iot/json?k={tag}&i=meter", content=b'{"v": 1}')
    assert refused.status_code == 503 and refused.json()["name"] == "BUS_UNAVAILABLE"
    bus.down = False
    assert client.post(f"/iot/json?k={tag}&i=meter", content=b'{"v": 2}').status_code == 200
    assert [e.payload.attributes[0].value for e in read_topic(bus, OBSERVATIONS.name)] == [2]
