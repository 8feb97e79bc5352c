"""The topic catalogue: every topic, its payload schema and what its key means."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from cityos_kernel.events.envelope import (
    DEFAULT_TENANT,
    Envelope,
    SchemaError,
    decode_envelope,
    encode_envelope,
    encode_unchecked,
)
from cityos_kernel.events.payloads import (
    AlertV1,
    AuditEventV1,
    CommandV1,
    ConfigChangedV1,
    DeadLetterV1,
    DeviceEventV1,
    EntityChangedV1,
    ObservationV1,
)
from cityos_kernel.logging import correlation_id_var, tenant_var

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Topic(Generic[P]):
    """A bus topic with a versioned payload schema."""

    name: str
    payload: type[P]
    key: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    envelope_model: type[Envelope[P]] = field(init=False, repr=False, compare=False)
    #: The name's version suffix and what precedes it, computed once (decode checks them
    #: for every record).
    schema_version: int = field(init=False, repr=False, compare=False)
    event_type: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "envelope_model", Envelope[self.payload])  # type: ignore[name-defined]
        event_type, version = self.name.rsplit(".v", 1)
        object.__setattr__(self, "schema_version", int(version))
        object.__setattr__(self, "event_type", event_type)

    def envelope(
        self,
        payload: P,
        *,
        source: str,
        tenant: str | None = None,
        correlation_id: str | None = None,
    ) -> Envelope[P]:
        """Wrap a payload, taking tenant and correlation id from the log context if unset."""
        extra = {"correlation_id": correlation_id or correlation_id_var.get()}
        return self.envelope_model(
            type=self.event_type,
            schema_version=self.schema_version,
            tenant=tenant or tenant_var.get() or DEFAULT_TENANT,
            source=source,
            payload=payload,
            **{key: value for key, value in extra.items() if value},
        )

    def encode(self, envelope: Envelope[P]) -> bytes:
        return encode_envelope(envelope)

    def encode_unchecked(
        self,
        payload: Mapping[str, Any],
        *,
        source: str,
        tenant: str,
        correlation_id: str | None = None,
    ) -> bytes:
        """This topic's envelope around ``payload`` (JSON-ready data with exactly the fields
        of its schema), as JSON bytes without validation: see
        :func:`cityos_kernel.events.envelope.encode_unchecked`."""
        return encode_unchecked(
            self.event_type,
            self.schema_version,
            payload,
            tenant=tenant,
            source=source,
            correlation_id=correlation_id,
        )

    def decode(self, data: bytes) -> Envelope[P]:
        """Validate bytes against this topic's schema or raise ``SchemaError``."""
        envelope = decode_envelope(data, self.envelope_model)
        if envelope.type != self.event_type or envelope.schema_version != self.schema_version:
            raise SchemaError(
                f"envelope says {envelope.type} v{envelope.schema_version}, "
                f"topic {self.name} carries {self.event_type} v{self.schema_version}"
            )
        return envelope


OBSERVATIONS = Topic(
    "acquisition.observations.v1", ObservationV1, "entity id", ("acquisition",), ("knowledge",)
)
DEVICES = Topic(
    "acquisition.devices.v1", DeviceEventV1, "device id", ("acquisition",), ("knowledge", "support")
)
ACQUISITION_DEADLETTER = Topic(
    "acquisition.deadletter.v1", DeadLetterV1, "device id or topic", ("acquisition",), ("support",)
)
ENTITIES_CHANGED = Topic(
    "knowledge.entities.changed.v1",
    EntityChangedV1,
    "entity id",
    ("knowledge",),
    ("interoperability", "knowledge"),
)
ALERTS = Topic(
    "knowledge.alerts.v1", AlertV1, "rule id", ("knowledge",), ("interoperability", "support")
)
COMMANDS = Topic("knowledge.commands.v1", CommandV1, "entity id", ("knowledge",), ("acquisition",))
AUDIT = Topic(
    "support.audit.v1",
    AuditEventV1,
    "subject",
    ("acquisition", "knowledge", "interoperability", "support"),
    ("support",),
)
CONFIG_CHANGED = Topic(
    "support.config.changed.v1",
    ConfigChangedV1,
    "config key",
    ("support",),
    ("acquisition", "knowledge", "interoperability", "support"),
)
#: Envelopes that failed their topic's schema in any consumer (see docs/adr/0002).
PLATFORM_DEADLETTER = Topic(
    "platform.deadletter.v1", DeadLetterV1, "source topic", ("kernel",), ("support",)
)

CATALOGUE: dict[str, Topic[BaseModel]] = {
    topic.name: topic  # type: ignore[misc]
    for topic in (
        OBSERVATIONS,
        DEVICES,
        ACQUISITION_DEADLETTER,
        ENTITIES_CHANGED,
        ALERTS,
        COMMANDS,
        AUDIT,
        CONFIG_CHANGED,
        PLATFORM_DEADLETTER,
    )
}
