"""Device events go through the registry's outbox: announced if and only if the change committed.

On PostgreSQL: a change made while the bus is down still commits and its event waits in
``acquisition.outbox`` until a relay — here another process's, as after a crash — publishes
it, once; a change that fails announces nothing; events leave in the order of the changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Engine, create_engine, text

from cityos.migrate import upgrade
from cityos_acquisition.layer import AcquisitionLayer
from cityos_acquisition.registry.outbox import OutboxRelay
from cityos_acquisition.registry.postgres import PostgresRegistryStore
from cityos_acquisition.registry.records import RegistryConflictError
from cityos_acquisition.registry.schemas import DeviceIn
from cityos_acquisition.registry.service import Registry, Scope
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.bus.port import PublishError, Record
from cityos_kernel.database import sqlalchemy_url
from cityos_kernel.events.topics import DEVICES
from tests.fixtures.acquisition import read_topic, wait_for

pytestmark = pytest.mark.postgres

SCOPE = Scope("city", "/meters")


class DownBus(MemoryBus):
    """A bus that does not confirm anything while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__(partitions=1)
        self.down = False

    def publish(self, records: Sequence[Record]) -> None:
        if self.down:
            raise PublishError("bus unavailable")
        super().publish(records)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url, [AcquisitionLayer()])
    engine = create_engine(sqlalchemy_url(database_url))
    yield engine
    engine.dispose()


def device(device_id: str, **fields: object) -> DeviceIn:
    return DeviceIn.model_validate({"device_id": device_id, "entity_type": "Meter", **fields})


def unsent(engine: Engine) -> int:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM acquisition.outbox WHERE sent_at IS NULL"
        return int(connection.execute(text(query)).scalar_one())


def test_an_event_the_bus_refused_is_relayed_later_by_another_process(engine: Engine) -> None:
    bus = DownBus()
    bus.down = True
    registry = Registry(PostgresRegistryStore(engine), bus)
    registry.create_devices(SCOPE, [device("meter-1")])  # the change commits regardless
    assert registry.get_device(SCOPE, "meter-1") is not None
    assert read_topic(bus, DEVICES.name) == []
    assert unsent(engine) == 1

    # This process is gone; another one's relay service finds the event.
    other_bus = MemoryBus(partitions=1)
    relay = OutboxRelay(PostgresRegistryStore(engine), other_bus, interval=0.05)
    relay.start()
    try:
        (event,) = wait_for(lambda: read_topic(other_bus, DEVICES.name, timeout=0.05))
    finally:
        relay.stop()
    assert (event.payload.event, event.payload.device_id, event.tenant) == (
        "provisioned",
        "meter-1",
        "city",
    )
    assert event.payload.device["entity_id"] == "urn:ngsi-ld:Meter:meter-1"
    assert unsent(engine) == 0
    assert relay.relay_once() == 0  # published once
    assert len(read_topic(other_bus, DEVICES.name)) == 1


def test_a_change_that_fails_announces_nothing(engine: Engine) -> None:
    bus = DownBus()
    registry = Registry(PostgresRegistryStore(engine), bus)
    registry.create_devices(SCOPE, [device("meter-1")])
    with pytest.raises(RegistryConflictError):
        registry.create_devices(SCOPE, [device("meter-2"), device("meter-1")])
    assert registry.get_device(SCOPE, "meter-2") is None
    events = [e.payload for e in read_topic(bus, DEVICES.name)]
    assert [(e.event, e.device_id) for e in events] == [("provisioned", "meter-1")]
    assert unsent(engine) == 0


def test_events_leave_in_the_order_of_the_changes(engine: Engine) -> None:
    bus = DownBus()
    registry = Registry(PostgresRegistryStore(engine), bus)
    bus.down = True  # everything waits in the outbox, then leaves in one relay
    registry.create_devices(SCOPE, [device("meter-1"), device("meter-2")])
    record = registry.get_device(SCOPE, "meter-1")
    assert record is not None
    updated = registry.update_device(record, {"expected_interval": 60})
    registry.delete_device(updated)
    bus.down = False
    registry.relay_outbox()
    events = [e.payload for e in read_topic(bus, DEVICES.name)]
    assert [(e.event, e.device_id) for e in events] == [
        ("provisioned", "meter-1"),
        ("provisioned", "meter-2"),
        ("updated", "meter-1"),
        ("deleted", "meter-1"),
    ]
