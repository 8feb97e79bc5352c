"""The registry cache: changes from this process apply at once, other processes' via the topic."""

from __future__ import annotations

import pytest

from cityos_acquisition.registry.records import UnresolvedDeviceError
from cityos_acquisition.registry.schemas import DeviceIn, GroupIn
from cityos_acquisition.registry.service import Registry, Scope, cache_invalidation_consumer
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.bus.memory import MemoryBus

SCOPE = Scope("openiot", "/")


def test_another_replicas_change_reaches_this_cache_through_the_devices_topic() -> None:
    bus, store = MemoryBus(partitions=1), MemoryRegistryStore()
    here, there = Registry(store, bus, cache_ttl=3600), Registry(store, bus, cache_ttl=3600)
    here.create_groups(SCOPE, [GroupIn(apikey="k", entity_type="Thing", autoprovision=False)])
    there.create_devices(SCOPE, [DeviceIn(device_id="d1", apikey="k", entity_type="Meter")])
    spec = cache_invalidation_consumer(here, "replica-a")
    runner = ConsumerRunner(bus, spec)
    subscription = bus.subscribe(spec.group, ["acquisition.devices.v1"])

    def deliver_events() -> None:
        runner.process(subscription, subscription.poll(100, 0.05))

    deliver_events()
    assert here.resolve("k", "d1").entity_type == "Meter"  # now cached for an hour
    (record,) = store.devices_by_id("d1")
    there.update_device(record, {"entity_type": "WaterMeter"})
    assert here.resolve("k", "d1").entity_type == "Meter"  # stale until the event arrives
    deliver_events()
    assert here.resolve("k", "d1").entity_type == "WaterMeter"

    there.delete_device(store.devices_by_id("d1")[0])
    deliver_events()
    with pytest.raises(UnresolvedDeviceError, match="does not autoprovision"):
        here.resolve("k", "d1")
    subscription.close()
