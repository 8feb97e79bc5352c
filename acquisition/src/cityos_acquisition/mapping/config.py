"""What the mapper needs to know about a device: its entity, attributes and commands.

These are the IoT Agent's provisioning concepts (config groups and devices) merged into one
:class:`DeviceProfile` per device; the registry builds them, the mapper only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from cityos_acquisition.expressions import Expression, compile_expression

#: How a LoRaWAN device's frame payload is turned into measures.
DataModel = Literal["cayennelpp", "application_server", "raw"]


@dataclass(frozen=True)
class AttributeMapping:
    """``object_id`` (what the device sends) → NGSI-LD attribute ``name``."""

    object_id: str
    name: str
    type: str = "Property"
    unit_code: str | None = None
    expression: str | None = None
    #: Send this measure to another entity (the IoT Agent's ``entity_name``/``entity_type``).
    entity_name: str | None = None
    entity_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def compiled(self) -> Expression | None:
        return compile_expression(self.expression) if self.expression else None


@dataclass(frozen=True)
class StaticAttribute:
    """A value sent with every observation of the device's entity."""

    name: str
    type: str
    value: Any
    unit_code: str | None = None


@dataclass(frozen=True)
class CommandSpec:
    """A command the device accepts; its status and result come back as attributes."""

    name: str
    type: str = "command"


@dataclass(frozen=True)
class DeviceProfile:
    """Everything known about one device after merging its config group."""

    device_id: str
    tenant: str
    service_path: str = "/"
    entity_type: str = "Device"
    entity_name: str | None = None
    entity_name_exp: str | None = None
    apikey: str | None = None
    protocol: str | None = None
    transport: str | None = None
    attributes: tuple[AttributeMapping, ...] = ()
    static_attributes: tuple[StaticAttribute, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    #: ``True``: only mapped attributes; a list: only these names; ``False``: everything.
    explicit_attrs: bool | tuple[str, ...] = False
    data_model: DataModel = "application_server"
    lorawan: dict[str, Any] = field(default_factory=dict)
    #: A device silent for longer than this raises a ``no_data`` event.
    expected_interval: timedelta | None = None
    provisioned: bool = True
    #: Resolved mappings per object_id (the hot path asks the same questions per message).
    resolved: dict[str, tuple[AttributeMapping, bool]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def attribute_for(self, object_id: str) -> AttributeMapping | None:
        for mapping in self.attributes:
            if mapping.object_id == object_id:
                return mapping
        for mapping in self.attributes:
            if mapping.name == object_id:
                return mapping
        return None

    def command(self, name: str) -> CommandSpec | None:
        return next((command for command in self.commands if command.name == name), None)
