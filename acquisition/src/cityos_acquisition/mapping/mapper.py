"""Turns one device message's measure groups into ``Observation`` payloads.

The rules are the IoT Agent's: a measure is looked up by ``object_id`` in the device's
attributes (then its group's); a mapped measure takes the attribute's name, type, unit
and expression and may go to another entity; an unmapped one passes through under its own
name unless ``explicitAttrs`` says otherwise; static attributes ride along with every
observation of the device's own entity. Smart Data Models defaults fill in names and units
for known sensor kinds.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cityos_acquisition.codecs.errors import DecodeError
from cityos_acquisition.codecs.json_measures import MeasureGroup
from cityos_acquisition.codecs.timestamps import observation_time
from cityos_acquisition.expressions import (
    Expression,
    ExpressionError,
    compile_expression,
    evaluate,
)
from cityos_acquisition.expressions.functions import to_number
from cityos_acquisition.mapping.config import AttributeMapping, DeviceProfile
from cityos_acquisition.mapping.observation import Attribute, Observation
from cityos_acquisition.mapping.smart_data_models import default_attribute
from cityos_acquisition.mapping.values import NUMBER_TYPES, cast_value, kind_of

URN_PREFIX = "urn:ngsi-ld:"


class MappingError(DecodeError):
    """A measure that the device's configuration cannot turn into an attribute."""


@functools.lru_cache(maxsize=4096)
def compiled(source: str) -> Expression:
    """Expressions are compiled once per distinct text, not once per message."""
    return compile_expression(source)


def entity_urn(entity_type: str, name: str) -> str:
    """``urn:ngsi-ld:<Type>:<name>`` unless ``name`` is already a URN."""
    return name if name.startswith("urn:") else f"{URN_PREFIX}{entity_type}:{name}"


def device_entity_id(profile: DeviceProfile, measures: Mapping[str, Any] | None = None) -> str:
    """The entity a device's measures describe (``entity_name``, ``entityNameExp`` or default)."""
    if profile.entity_name:
        return entity_urn(profile.entity_type, profile.entity_name)
    if profile.entity_name_exp:
        variables = {
            **(measures or {}),
            "id": profile.device_id,
            "type": profile.entity_type,
            "service": profile.tenant,
            "subservice": profile.service_path,
        }
        try:
            name = evaluate(compiled(profile.entity_name_exp), variables)
        except ExpressionError as exc:
            raise MappingError(f"entityNameExp {profile.entity_name_exp!r}: {exc.reason}") from exc
        if not isinstance(name, str | int) or str(name) == "":
            raise MappingError(f"entityNameExp gave {name!r}, not an entity name")
        return entity_urn(profile.entity_type, str(name))
    return entity_urn(profile.entity_type, profile.device_id)


def _allowed(profile: DeviceProfile, mapping: AttributeMapping, mapped: bool) -> bool:
    """``explicitAttrs``: true keeps mapped attributes only, a list keeps the names listed."""
    explicit = profile.explicit_attrs
    if explicit is True:
        return mapped
    if isinstance(explicit, tuple):
        return mapping.name in explicit or mapping.object_id in explicit
    return True


def _expression_variables(profile: DeviceProfile, measures: Mapping[str, Any]) -> dict[str, Any]:
    """Measures by object_id (numeric text cast for numeric attributes), plus device facts."""
    variables: dict[str, Any] = {"id": profile.device_id, "type": profile.entity_type}
    for object_id, value in measures.items():
        mapping = profile.attribute_for(object_id)
        if mapping is not None and mapping.type in NUMBER_TYPES:
            with contextlib.suppress(ExpressionError):
                value = to_number(value)
        variables[object_id] = value
        if mapping is not None:
            variables.setdefault(mapping.name, value)
    return variables


def _mapping(profile: DeviceProfile, object_id: str) -> tuple[AttributeMapping, bool]:
    """The attribute for a measure, and whether provisioning mapped it (cached per profile)."""
    found = profile.resolved.get(object_id)
    if found is None:
        mapping = profile.attribute_for(object_id)
        if mapping is not None:
            found = (mapping, True)
        else:
            default = default_attribute(profile.entity_type, object_id)
            found = (
                AttributeMapping(object_id, default.name, default.type, default.unit_code)
                if default is not None
                else AttributeMapping(object_id, object_id),
                False,
            )
        profile.resolved[object_id] = found
    return found


def _needs_variables(profile: DeviceProfile) -> bool:
    return bool(profile.entity_name_exp) or any(a.expression for a in profile.attributes)


def _mapped_value(
    mapping: AttributeMapping, value: Any, variables: Mapping[str, Any], object_id: str
) -> Any:
    if mapping.expression:
        try:
            value = evaluate(compiled(mapping.expression), {**variables, "value": value})
        except ExpressionError as exc:
            raise MappingError(
                f"attribute {mapping.name!r}: expression {mapping.expression!r} failed on "
                f"{object_id}={value!r}: {exc.reason}"
            ) from exc
    try:
        return cast_value(value, mapping.type)
    except DecodeError as exc:
        raise MappingError(f"attribute {mapping.name!r} ({mapping.type}): {exc.reason}") from exc


def map_measures(
    profile: DeviceProfile,
    groups: Sequence[MeasureGroup],
    *,
    received_at: datetime,
) -> list[Observation]:
    """One observation per (measure group, target entity); raises :class:`MappingError`."""
    observations: list[Observation] = []
    needs_variables = _needs_variables(profile)
    for group in groups:
        observed_at = observation_time(group.device_time, received_at)
        variables = _expression_variables(profile, group.measures) if needs_variables else {}
        own_id = device_entity_id(profile, variables)
        entities: dict[str, tuple[str, list[Attribute]]] = {}
        own: list[Attribute] = []
        for object_id, raw_value in group.measures.items():
            mapping, mapped = _mapping(profile, object_id)
            if not _allowed(profile, mapping, mapped):
                continue
            attribute = Attribute(
                mapping.name,
                _mapped_value(mapping, raw_value, variables, object_id),
                observed_at,
                kind_of(mapping.type),
                mapping.unit_code,
            )
            if mapping.entity_name:
                entity_type = mapping.entity_type or profile.entity_type
                target = entity_urn(entity_type, mapping.entity_name)
                entities.setdefault(target, (entity_type, []))[1].append(attribute)
            else:
                own.append(attribute)
        if own:
            if profile.static_attributes:
                own.extend(
                    Attribute(
                        static.name,
                        cast_value(static.value, static.type),
                        observed_at,
                        kind_of(static.type),
                        static.unit_code,
                    )
                    for static in profile.static_attributes
                )
            observations.append(
                Observation(own_id, profile.entity_type, own, profile.device_id, received_at)
            )
        if entities:
            observations.extend(
                Observation(entity_id, entity_type, attributes, profile.device_id, received_at)
                for entity_id, (entity_type, attributes) in entities.items()
            )
    return observations
