"""Consumes ``knowledge.commands.v1`` and sends each command to its device.

For each command: ``<cmd>_status`` PENDING is published, the command goes out (MQTT,
ChirpStack or TTS downlink; HTTP devices get it when they poll), then DELIVERED once the
broker confirmed it; the device's answer on ``cmdexe`` brings OK or ERROR and ``<cmd>_info``
(see the ingestion pipeline). A command that cannot be sent is reported as ERROR with the
reason in ``<cmd>_info``; one whose entity has no device is dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from cityos_acquisition.commands.downlink import CommandRejectedError, downlink_for
from cityos_acquisition.commands.pending import PendingCommand, PendingCommandStore
from cityos_acquisition.commands.status import CommandStatus, command_status_observation
from cityos_acquisition.ingest.encoding import observation_record
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.registry.service import Registry
from cityos_kernel.bus.consumer import ConsumerSpec, Message, dead_letter_payload
from cityos_kernel.bus.port import Bus, Record
from cityos_kernel.events.payloads import CommandV1
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, COMMANDS

logger = logging.getLogger(__name__)

SOURCE = "acquisition:commands"
#: Sends ``payload`` to an MQTT topic and returns once the broker confirmed it.
Sender = Callable[[str, bytes], None]


class CommandDispatcher:
    """The handler of the command consumer."""

    def __init__(
        self,
        registry: Registry,
        bus: Bus,
        pending: PendingCommandStore,
        send: Sender | None,
    ) -> None:
        self._registry = registry
        self._bus = bus
        self._pending = pending
        self._send = send

    def _status(
        self,
        tenant: str,
        profile: DeviceProfile,
        command: CommandV1,
        status: CommandStatus,
        info: object = None,
    ) -> None:
        observation = command_status_observation(
            profile,
            command.command,
            status,
            at=datetime.now(UTC),
            info=info,
            entity_id=command.entity_id,
        )
        self._bus.publish([observation_record(observation, tenant=tenant, source=SOURCE)])

    def _dead_letter(self, message: Message, reason: str) -> None:
        payload = dead_letter_payload(
            message.delivery.value, reason=reason, source=COMMANDS.name, topic=COMMANDS.name
        )
        envelope = ACQUISITION_DEADLETTER.envelope(
            payload, source=SOURCE, tenant=message.envelope.tenant
        )
        key = message.delivery.key or COMMANDS.name
        self._bus.publish(
            [Record(ACQUISITION_DEADLETTER.name, key, ACQUISITION_DEADLETTER.encode(envelope))]
        )

    def __call__(self, batch: Sequence[Message]) -> None:
        for message in batch:
            command = message.envelope.payload
            assert isinstance(command, CommandV1)
            tenant = message.envelope.tenant
            profile = self._registry.find_by_entity(tenant, command.entity_id, command.device_id)
            if profile is None:
                self._dead_letter(message, f"no device behind entity {command.entity_id}")
                continue
            self.dispatch(tenant, profile, command)

    def dispatch(self, tenant: str, profile: DeviceProfile, command: CommandV1) -> None:
        if profile.command(command.command) is None:
            self._status(
                tenant, profile, command, "ERROR", f"device has no command {command.command!r}"
            )
            return
        if (profile.transport or "").upper() == "HTTP" and not profile.lorawan:
            queued = self._pending.add(
                tenant,
                profile.device_id,
                PendingCommand(
                    command.command_id, command.command, command.params, command.entity_id
                ),
            )
            if queued == "PENDING":  # not a redelivery of a command already delivered
                self._status(tenant, profile, command, "PENDING")
            return
        self._status(tenant, profile, command, "PENDING")
        try:
            downlink = downlink_for(profile, command.command, command.params)
        except CommandRejectedError as exc:
            self._status(tenant, profile, command, "ERROR", str(exc))
            return
        if self._send is None:
            self._status(tenant, profile, command, "ERROR", "no MQTT broker is configured")
            return
        self._send(downlink.topic, downlink.payload)  # raises: the batch is retried
        self._status(tenant, profile, command, "DELIVERED")
        logger.info(
            "command %s sent to %s on %s", command.command, profile.device_id, downlink.topic
        )


def command_consumer(dispatcher: CommandDispatcher) -> ConsumerSpec:
    return ConsumerSpec("acquisition-commands", "acquisition-commands", [COMMANDS], dispatcher)
