"""Device health: rate, battery and RSSI, and no_data when a device falls silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cityos_acquisition.health.monitor import HealthMonitor
from cityos_acquisition.ingest.inbound import Inbound
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.registry.schemas import DeviceIn
from cityos_acquisition.registry.service import Registry, Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import DEVICES
from tests.fixtures.acquisition import read_topic

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def message(
    profile: DeviceProfile, at: datetime, battery: float
) -> tuple[Inbound, list[ObservationV1]]:
    attribute = ObservedAttribute(name="batteryLevel", value=battery, observed_at=at)
    observation = ObservationV1(
        entity_id="urn:ngsi-ld:Device:meter", entity_type="Device", attributes=[attribute]
    )
    return Inbound("mqtt", "json", b"{}", at), [observation]


def test_silence_raises_no_data_once_and_recovery_says_so() -> None:
    bus, clock = MemoryBus(partitions=1), Clock()
    registry = Registry(MemoryRegistryStore(), bus)
    monitor = HealthMonitor(registry, bus, clock=clock)
    registry.add_listener(monitor.on_device_event)
    registry.create_devices(
        Scope("openiot", "/"), [DeviceIn(device_id="meter", expected_interval=60)]
    )
    (record,) = registry.store.all_devices()
    profile = registry.profile(record)

    for second in (0, 30, 60):
        at = START + timedelta(seconds=second)
        monitor.record(profile, *message(profile, at, battery=0.9 - second / 1000))
    (health,) = monitor.snapshot("openiot")
    assert health["rate_per_minute"] == 2.0
    assert health["battery_level"] == pytest.approx(0.84) and health["status"] == "ok"

    clock.now = START + timedelta(seconds=100)
    assert monitor.check_silence() == []
    clock.now = START + timedelta(seconds=121)
    assert monitor.check_silence() == ["meter"]
    assert monitor.check_silence() == []  # raised once, not on every check

    monitor.record(profile, *message(profile, clock.now, battery=0.8))
    events = [e for e in read_topic(bus, DEVICES.name) if e.payload.device_id == "meter"]
    kinds = [(e.tenant, e.payload.event) for e in events]
    assert kinds == [("openiot", "provisioned"), ("openiot", "no_data"), ("openiot", "health")]
    assert events[1].payload.details["expected_interval_s"] == 60
    assert events[2].payload.details["status"] == "ok"


def test_a_device_that_never_speaks_is_reported_too() -> None:
    bus, clock = MemoryBus(partitions=1), Clock()
    registry = Registry(MemoryRegistryStore(), bus)
    registry.create_devices(Scope("t", "/"), [DeviceIn(device_id="mute", expected_interval=30)])
    monitor = HealthMonitor(registry, bus, clock=clock, check_interval=3600)
    monitor.start()
    try:
        clock.now = START + timedelta(seconds=31)
        assert monitor.check_silence() == ["mute"]
    finally:
        monitor.stop()
