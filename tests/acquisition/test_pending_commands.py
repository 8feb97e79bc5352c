"""Commands waiting for an HTTP device to poll them are kept in PostgreSQL.

They survive a restart of the acquisition layer, are delivered once (PENDING → DELIVERED),
stay pending when the bus cannot confirm the delivery, and a command redelivered by the bus
(at least once) is queued once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import create_engine, text

from cityos_acquisition.commands.pending import PendingCommand, PostgresPendingCommands
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.bus.port import PublishError, Record
from cityos_kernel.database import sqlalchemy_url
from cityos_kernel.events.payloads import CommandV1
from cityos_kernel.events.topics import COMMANDS, OBSERVATIONS
from tests.acquisition.test_commands import statuses
from tests.fixtures.acquisition import AcquisitionApp, make_acquisition_app

pytestmark = pytest.mark.postgres

TENANT = "urn:ngsi-ld:tenant:default"
LAMP = {
    "device_id": "lamp001",
    "entity_name": "urn:ngsi-ld:Lamp:001",
    "entity_type": "Lamp",
    "apikey": "lampkey",
    "protocol": "PDI-IoTA-UltraLight",
    "transport": "HTTP",
    "commands": [{"name": "on"}, {"name": "dim"}],
}
POLL = {"k": "lampkey", "i": "lamp001", "getCmd": 1}


def command(name: str, params: object, command_id: str | None = None) -> Record:
    payload = CommandV1(
        command_id=command_id or uuid.uuid4().hex,
        entity_id="urn:ngsi-ld:Lamp:001",
        command=name,
        params=params,
    )
    envelope = COMMANDS.envelope(payload, source="test", tenant=TENANT)
    return Record(COMMANDS.name, payload.entity_id, COMMANDS.encode(envelope))


def consume_commands(app: AcquisitionApp, records: Sequence[Record]) -> None:
    app.bus.publish(records)
    runner = ConsumerRunner(app.bus, app.wired.parts.consumers[0])
    subscription = app.bus.subscribe("acquisition-commands", [COMMANDS.name])
    try:
        runner.process(subscription, subscription.poll(100, 0.1))
    finally:
        subscription.close()


def test_pending_commands_survive_a_restart_and_are_delivered_once(database_url: str) -> None:
    first = make_acquisition_app(database_url)
    with first.client:
        assert first.client.post("/iot/devices", json={"devices": [LAMP]}).status_code == 201
        repeated = uuid.uuid4().hex
        consume_commands(
            first,
            [
                command("on", None, repeated),
                command("dim", {"level": 40}),
                command("on", None, repeated),
            ],
        )
        assert statuses(first.bus, "on")[0] == ("PENDING", None)
    # A new process on the same database: nothing of the first one's memory remains.
    second = make_acquisition_app(database_url)
    with second.client:
        polled = second.client.get("/iot/d", params=POLL)
        assert polled.status_code == 200
        assert polled.text == "lamp001@on#lamp001@dim|level=40"  # the repeated one once
        assert second.client.get("/iot/d", params=POLL).text == ""
        assert statuses(second.bus, "on") == [("DELIVERED", None)]
        assert statuses(second.bus, "dim") == [("DELIVERED", None)]
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT command, status, delivered_at IS NOT NULL FROM acquisition.pending_commands"
            )
        ).all()
    engine.dispose()
    assert sorted(tuple(row) for row in rows) == [
        ("dim", "DELIVERED", True),
        ("on", "DELIVERED", True),
    ]


class RefusingBus(MemoryBus):
    """Refuses observations while ``down`` is set."""

    down = False

    def publish(self, records: Sequence[Record]) -> None:
        if self.down and any(r.topic == OBSERVATIONS.name for r in records):
            raise PublishError("bus unavailable")
        super().publish(records)


def test_a_delivery_the_bus_did_not_confirm_stays_pending(database_url: str) -> None:
    app = make_acquisition_app(database_url)
    with app.client:
        assert app.client.post("/iot/devices", json={"devices": [LAMP]}).status_code == 201
        consume_commands(app, [command("on", None)])
    store = PostgresPendingCommands(create_engine(sqlalchemy_url(database_url)))
    bus = RefusingBus()
    bus.down = True

    def confirm(commands: list[PendingCommand]) -> None:
        bus.publish([Record(OBSERVATIONS.name, "k", b"{}")])

    with pytest.raises(PublishError):
        store.deliver(TENANT, "lamp001", confirm)
    bus.down = False
    delivered = store.deliver(TENANT, "lamp001", confirm)
    assert [c.command for c in delivered] == ["on"]
    assert store.deliver(TENANT, "lamp001", confirm) == []
