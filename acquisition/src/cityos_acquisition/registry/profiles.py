"""Merging a device's document with its config group's into one :class:`DeviceProfile`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cityos_acquisition.mapping.config import (
    AttributeMapping,
    CommandSpec,
    DataModel,
    DeviceProfile,
    StaticAttribute,
)
from cityos_acquisition.registry.records import DeviceRecord, GroupRecord
from cityos_acquisition.registry.schemas import AttributeIn, DeviceIn, GroupIn, StaticAttributeIn

DEFAULT_ENTITY_TYPE = "Device"


def _attribute(attribute: AttributeIn) -> AttributeMapping:
    return AttributeMapping(
        object_id=attribute.object_id or attribute.name,
        name=attribute.name,
        type=attribute.type,
        unit_code=attribute.resolved_unit_code(),
        expression=attribute.expression,
        entity_name=attribute.entity_name,
        entity_type=attribute.entity_type,
    )


def _static(attribute: StaticAttributeIn) -> StaticAttribute:
    return StaticAttribute(attribute.name, attribute.type, attribute.value, attribute.unit_code)


def _explicit(value: bool | list[str] | None) -> bool | tuple[str, ...] | None:
    return tuple(value) if isinstance(value, list) else value


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def build_profile(device: DeviceRecord, group: GroupRecord | None) -> DeviceProfile:
    """The device's own settings first, its group's where the device says nothing."""
    own = DeviceIn.model_validate(device.document)
    shared = GroupIn.model_validate(group.document) if group else None
    attributes = [_attribute(a) for a in own.attributes]
    known = {a.object_id for a in attributes} | {a.name for a in attributes}
    if shared:
        attributes += [
            _attribute(a)
            for a in shared.attributes
            if (a.object_id or a.name) not in known and a.name not in known
        ]
    statics = {a.name: _static(a) for a in (shared.static_attributes if shared else [])}
    statics.update({a.name: _static(a) for a in own.static_attributes})
    commands = {c.name: CommandSpec(c.name, c.type) for c in (shared.commands if shared else [])}
    commands.update({c.name: CommandSpec(c.name, c.type) for c in own.commands})
    interval = _first(own.expected_interval, shared.expected_interval if shared else None)
    data_model: DataModel = "application_server"
    if own.lorawan is not None and own.lorawan.data_model in ("cayennelpp", "raw"):
        data_model = "cayennelpp" if own.lorawan.data_model == "cayennelpp" else "raw"
    return DeviceProfile(
        device_id=device.device_id,
        tenant=device.tenant,
        service_path=device.service_path,
        entity_type=_first(own.entity_type, shared.entity_type if shared else None)
        or DEFAULT_ENTITY_TYPE,
        entity_name=own.entity_name,
        entity_name_exp=shared.entity_name_exp if shared else None,
        apikey=_first(own.apikey, shared.apikey if shared else None),
        protocol=_first(own.protocol, shared.protocol if shared else None),
        transport=_first(own.transport, shared.transport if shared else None),
        attributes=tuple(attributes),
        static_attributes=tuple(statics.values()),
        commands=tuple(commands.values()),
        explicit_attrs=_first(
            _explicit(own.explicit_attrs),
            _explicit(shared.explicit_attrs) if shared else None,
            False,
        ),
        data_model=data_model,
        lorawan=own.lorawan.document() if own.lorawan else {},
        expected_interval=timedelta(seconds=interval) if interval else None,
    )
