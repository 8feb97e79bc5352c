"""From one raw input to the bus records it produces: observations, or one dead letter.

It decodes with the pure codecs, resolves the device in the registry, maps measures to
NGSI-LD attributes and encodes envelopes. It never publishes: the transport publishes the
records of a whole batch and acknowledges its inputs only after the bus confirmed them, so
the same code serves MQTT (ack after confirm) and HTTP (200 after confirm).
"""

from __future__ import annotations

import base64
import collections
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cityos_acquisition.codecs.cayenne_lpp import cayenne_measures
from cityos_acquisition.codecs.errors import DecodeError
from cityos_acquisition.codecs.json_measures import (
    MeasureGroup,
    decode_json_measures,
    decode_single_attribute,
    load_json,
)
from cityos_acquisition.codecs.lorawan import (
    LoraUplink,
    decode_chirpstack_uplink,
    decode_things_stack_uplink,
)
from cityos_acquisition.codecs.ultralight import decode_ultralight, parse_ultralight_command
from cityos_acquisition.commands.status import CommandStatus, command_status_observation
from cityos_acquisition.ingest import metrics
from cityos_acquisition.ingest.encoding import observation_record
from cityos_acquisition.ingest.inbound import Inbound
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.mapping.mapper import MappingError, entity_urn, map_measures
from cityos_acquisition.mapping.observation import Attribute, Observation
from cityos_acquisition.mapping.smart_data_models import SENSOR_DEFAULTS
from cityos_acquisition.registry.records import UnresolvedDeviceError
from cityos_acquisition.registry.service import Registry
from cityos_kernel.bus.consumer import dead_letter_payload
from cityos_kernel.bus.port import Record
from cityos_kernel.events.envelope import DEFAULT_TENANT
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER

logger = logging.getLogger(__name__)

#: Reason kinds used as the ``reason`` label of the dead-letter metric (bounded cardinality).
REASON_KINDS: dict[type[Exception], str] = {
    MappingError: "mapping",
    UnresolvedDeviceError: "unknown_device",
    DecodeError: "decode",
}

ActivityListener = Callable[[DeviceProfile, Inbound, list[Observation]], None]


@dataclass
class Outcome:
    """What one input produced: records to publish, and whether it was rejected."""

    records: list[Record] = field(default_factory=list)
    rejected: str | None = None
    reason_kind: str | None = None
    profile: DeviceProfile | None = None
    observations: list[Observation] = field(default_factory=list)


def _reason_kind(error: Exception) -> str:
    for error_type, kind in REASON_KINDS.items():
        if isinstance(error, error_type):
            return kind
    return "error"


def _radio_observation(profile: DeviceProfile, uplink: LoraUplink, inbound: Inbound) -> Any:
    """RSSI, SNR and frame counter as attributes of the device's ``Device`` entity."""
    defaults = SENSOR_DEFAULTS["Device"]
    measures = uplink.radio_measures()
    if not measures:
        return None
    attributes = []
    for name, value in measures.items():
        default = defaults["frameCounter" if name == "fCnt" else name]
        attributes.append(
            Attribute(
                name=default.name,
                value=value,
                observed_at=inbound.received_at,
                unit_code=default.unit_code,
            )
        )
    return Observation(
        entity_id=entity_urn("Device", profile.device_id),
        entity_type="Device",
        attributes=attributes,
        device_id=profile.device_id,
        received_at=inbound.received_at,
    )


class IngestPipeline:
    """Turns :class:`Inbound` inputs into bus records, never raising for a bad input."""

    def __init__(
        self, registry: Registry, *, listeners: list[ActivityListener] | None = None
    ) -> None:
        self.registry = registry
        self.listeners: list[ActivityListener] = listeners or []

    def process(self, inbound: Inbound, *, count: bool = True) -> Outcome:
        """The records ``inbound`` produces; ``count=False`` leaves the message counter to
        the caller (:meth:`count_batch`: one counter update per batch, not per message)."""
        outcome = Outcome()
        try:
            profile, observations = self._observations(inbound)
        except (DecodeError, UnresolvedDeviceError) as exc:
            reason = exc.reason
            outcome.rejected, outcome.reason_kind = reason, _reason_kind(exc)
            outcome.records.append(self.dead_letter(inbound, reason))
            if count:
                metrics.messages(inbound.transport, "rejected").inc()
            metrics.DEAD_LETTERS.labels(inbound.transport, outcome.reason_kind).inc()
            return outcome
        outcome.profile, outcome.observations = profile, observations
        source = f"acquisition:{inbound.transport}"
        outcome.records.extend(
            observation_record(observation, tenant=profile.tenant, source=source)
            for observation in observations
        )
        if count:
            metrics.messages(inbound.transport, "accepted").inc()
        return outcome

    @staticmethod
    def count_batch(work: Iterable[tuple[Inbound, Outcome]]) -> None:
        """Count a confirmed batch processed with ``count=False``: messages by outcome and
        observations, one counter update per (transport, outcome)."""
        messages: collections.Counter[tuple[str, str]] = collections.Counter()
        observations: collections.Counter[str] = collections.Counter()
        for inbound, outcome in work:
            if outcome.rejected is not None:
                messages[inbound.transport, "rejected"] += 1
            elif outcome.profile is not None:
                messages[inbound.transport, "accepted"] += 1
                observations[inbound.transport] += len(outcome.observations)
        for (transport, kind), number in messages.items():
            metrics.messages(transport, kind).inc(number)
        for transport, number in observations.items():
            metrics.observations(transport).inc(number)

    def accepted(self, inbound: Inbound, outcome: Outcome, *, count: bool = True) -> None:
        """Call once the outcome's records are confirmed: counts and tells the listeners."""
        if outcome.profile is None:
            return
        if count:
            metrics.observations(inbound.transport).inc(len(outcome.observations))
        for listener in self.listeners:
            try:
                listener(outcome.profile, inbound, outcome.observations)
            except Exception:
                logger.exception("activity listener failed for %s", outcome.profile.device_id)

    def dead_letter(self, inbound: Inbound, reason: str, tenant: str | None = None) -> Record:
        payload = dead_letter_payload(
            inbound.payload, reason=reason, source=inbound.transport, topic=inbound.topic
        )
        envelope = ACQUISITION_DEADLETTER.envelope(
            payload, source=f"acquisition:{inbound.transport}", tenant=tenant or DEFAULT_TENANT
        )
        key = inbound.device_id or inbound.topic or inbound.transport
        return Record(ACQUISITION_DEADLETTER.name, key, ACQUISITION_DEADLETTER.encode(envelope))

    # -- decoding -----------------------------------------------------------------------
    def _observations(self, inbound: Inbound) -> tuple[DeviceProfile, list[Observation]]:
        if inbound.kind in ("chirpstack", "tts"):
            return self._lorawan(inbound)
        if not inbound.apikey or not inbound.device_id:
            raise DecodeError("no apikey or device id in the topic or request")
        kind = inbound.kind
        if kind.startswith("auto"):
            looks_json = inbound.payload.lstrip()[:1] in (b"{", b"[")
            kind = kind.replace("auto", "json" if looks_json else "ul")  # type: ignore[assignment]
        groups: list[MeasureGroup]
        if kind == "json":
            groups = decode_json_measures(inbound.payload)
        elif kind in ("json_attr", "ul_attr"):
            groups = [decode_single_attribute(inbound.payload, inbound.attribute or "value")]
        elif kind == "ul":
            groups = decode_ultralight(inbound.payload)
        else:
            groups = [self._command_result(kind, inbound)]
        if inbound.device_time:
            groups = [
                MeasureGroup(g.measures, g.device_time or inbound.device_time) for g in groups
            ]
        profile = self.registry.resolve(
            inbound.apikey, inbound.device_id, resource=inbound.resource
        )
        if kind.endswith("cmdexe"):
            return profile, self._command_observations(profile, groups[0], inbound)
        return profile, map_measures(profile, groups, received_at=inbound.received_at)

    def _lorawan(self, inbound: Inbound) -> tuple[DeviceProfile, list[Observation]]:
        decode = (
            decode_chirpstack_uplink if inbound.kind == "chirpstack" else decode_things_stack_uplink
        )
        uplink = decode(inbound.payload)
        profile = self.registry.resolve_lorawan(uplink)
        measures: dict[str, Any]
        if profile.data_model == "cayennelpp":
            measures = cayenne_measures(uplink.payload)
        elif profile.data_model == "raw":
            measures = {
                "payload": base64.b64encode(uplink.payload).decode(),
                "fPort": uplink.f_port,
            }
        else:
            if uplink.decoded is None:
                raise DecodeError(
                    "the network server sent no decoded object for a device whose data model "
                    "is application_server (configure its codec, or use cayennelpp or raw)"
                )
            measures = uplink.decoded
        observations: list[Observation] = []
        if measures:
            observations = map_measures(
                profile,
                [MeasureGroup(measures, uplink.device_time)],
                received_at=inbound.received_at,
            )
        radio = _radio_observation(profile, uplink, inbound)
        if radio is not None:
            observations.append(radio)
        return profile, observations

    # -- command results ----------------------------------------------------------------
    @staticmethod
    def _command_result(kind: str, inbound: Inbound) -> MeasureGroup:
        if kind == "ul_cmdexe":
            command = parse_ultralight_command(inbound.payload)
            if command.device_id != inbound.device_id:
                raise DecodeError(
                    f"command result names device {command.device_id!r}, "
                    f"the topic {inbound.device_id!r}"
                )
            return MeasureGroup({command.command: command.result})
        document = load_json(inbound.payload)
        if not isinstance(document, dict) or not document:
            raise DecodeError("a JSON command result must be an object {command: result}")
        return MeasureGroup({str(key): value for key, value in document.items()})

    @staticmethod
    def _command_observations(
        profile: DeviceProfile, results: MeasureGroup, inbound: Inbound
    ) -> list[Observation]:
        observations = []
        for command, result in results.measures.items():
            if profile.command(command) is None:
                raise DecodeError(f"device {profile.device_id!r} has no command {command!r}")
            status: CommandStatus = (
                "ERROR" if isinstance(result, dict) and "error" in result else "OK"
            )
            observations.append(
                command_status_observation(
                    profile, command, status, info=result, at=inbound.received_at
                )
            )
        return observations
