"""The simulator's traffic goes through the real ingestion and yields every sensor kind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cityos_acquisition.layer import AcquisitionParts, build_parts
from cityos_acquisition.registry.schemas import DeviceIn, GroupIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_acquisition.simulator import KINDS, SimulationProgress, run_simulation
from cityos_acquisition.simulator.traffic import make_devices, provisioning
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, OBSERVATIONS
from tests.fixtures.acquisition import read_topic, wait_for

pytestmark = pytest.mark.mqtt


@pytest.fixture
def ingesting(mqtt_url: str) -> Iterator[tuple[MemoryBus, AcquisitionParts, str]]:
    bus = MemoryBus(partitions=2)
    prefix = f"sim{uuid.uuid4().hex[:6]}"
    settings = AcquisitionSettings(mqtt_client_id=prefix, registry_cache_ttl=0)
    wired = build_parts(bus, MemoryRegistryStore(), settings, mqtt_url)
    groups, lorawan = provisioning(make_devices(len(KINDS), prefix=prefix))
    scope = Scope("urn:ngsi-ld:tenant:default", "/")
    wired.registry.create_groups(scope, [GroupIn.model_validate(g) for g in groups])
    wired.registry.create_devices(scope, [DeviceIn.model_validate(d) for d in lorawan])
    assert wired.mqtt is not None
    wired.mqtt._session_expiry = 60
    wired.mqtt.start()
    wired.mqtt.wait_connected()
    try:
        yield bus, wired, prefix
    finally:
        wired.mqtt.stop()


def test_every_kind_arrives_as_its_smart_data_model(
    ingesting: tuple[MemoryBus, AcquisitionParts, str], mqtt_url: str
) -> None:
    bus, _, prefix = ingesting
    reports: list[SimulationProgress] = []
    final = run_simulation(
        mqtt_url,
        devices=len(KINDS),
        rate=0,
        count=len(KINDS) * 2,
        prefix=prefix,
        progress=reports.append,
    )
    assert final.sent == len(KINDS) * 2 and reports[-1] == final
    observations = wait_for(
        lambda: (
            len(found := read_topic(bus, OBSERVATIONS.name, timeout=0.05)) >= 2 * len(KINDS)
            and found
        )
    )
    types = {e.payload.entity_type for e in observations}
    assert {kind.entity_type for kind in KINDS.values()} <= types
    names = {a.name for e in observations for a in e.payload.attributes}
    assert {"temperature", "pm25", "LAeq", "status", "fillingLevel", "pH"} <= names
    assert read_topic(bus, ACQUISITION_DEADLETTER.name, timeout=0.05) == []


def test_rate_option_paces_the_traffic(mqtt_url: str) -> None:
    final = run_simulation(mqtt_url, devices=3, rate=40, count=20, prefix="pace")
    assert final.sent == 20
    assert final.elapsed >= 19 / 40


def test_cityos_simulate_command_reports_progress(mqtt_url: str) -> None:
    from typer.testing import CliRunner

    from cityos.cli import app

    result = CliRunner().invoke(
        app,
        ["simulate", "--mqtt-url", mqtt_url, "--devices", "4", "--rate", "0", "--count", "8"],
    )
    assert result.exit_code == 0, result.output
    assert "sent 8 messages from 4 devices" in result.output
    refused = CliRunner().invoke(app, ["simulate", "--kinds", "volcano", "--count", "1"])
    assert refused.exit_code == 2
