"""Versioned payload schemas of the topic catalogue.

A field may be added with a default in place; renaming or removing one, or changing its
meaning, is a new schema version on a new topic (``...v2``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AttributeKind = Literal[
    "Property",
    "Relationship",
    "GeoProperty",
    "LanguageProperty",
    "VocabProperty",
    "JsonProperty",
    "ListProperty",
]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObservedAttribute(_Payload):
    """One measured value of one attribute, already in NGSI-LD terms."""

    name: str = Field(min_length=1)
    kind: AttributeKind = "Property"
    value: Any
    observed_at: datetime
    unit_code: str | None = None
    dataset_id: str | None = None


class ObservationV1(_Payload):
    """acquisition.observations.v1: measures of one entity from one device message."""

    entity_id: str = Field(min_length=1)
    entity_type: str = Field(min_length=1)
    attributes: list[ObservedAttribute] = Field(min_length=1)
    device_id: str | None = None
    received_at: datetime | None = None


class DeviceEventV1(_Payload):
    """acquisition.devices.v1: a device was provisioned, updated, deleted, or its health changed."""

    device_id: str = Field(min_length=1)
    event: Literal["provisioned", "updated", "deleted", "health", "no_data"]
    device: dict[str, Any] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)


class DeadLetterV1(_Payload):
    """A rejected input, kept with the reason so that nothing is silently lost."""

    reason: str
    source: str = Field(description="transport (mqtt, http, ...) or the bus topic it came from")
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    consumer_group: str | None = None
    payload: str = Field(description="the raw input, utf-8 text or base64, capped in size")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    truncated: bool = False
    original_size: int = Field(ge=0)


class EntityChangedV1(_Payload):
    """knowledge.entities.changed.v1: an entity changed, published after the commit."""

    entity_id: str
    entity_types: list[str]
    change: Literal["created", "updated", "replaced", "deleted", "attributes_deleted"]
    attributes: list[str] = Field(default_factory=list)
    entity: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None


class AlertV1(_Payload):
    """knowledge.alerts.v1: a complex-event-processing rule fired."""

    rule_id: str
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str
    entity_id: str | None = None
    fired_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class CommandV1(_Payload):
    """knowledge.commands.v1: a request to actuate a device behind an entity."""

    command_id: str
    entity_id: str
    command: str
    params: Any = None
    device_id: str | None = None


class AuditEventV1(_Payload):
    """support.audit.v1: who did what, to what, with which outcome."""

    subject: str
    client: str | None = None
    action: str
    target: str
    outcome: Literal["success", "failure", "denied"]
    details: dict[str, Any] = Field(default_factory=dict)


class ConfigChangedV1(_Payload):
    """support.config.changed.v1: a key of the configuration repository changed."""

    key: str
    version: int = Field(ge=1)
    value: Any = None
