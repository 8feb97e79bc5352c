"""Casting measured values to the NGSI-LD value an attribute's declared type asks for."""

from __future__ import annotations

from typing import Any

from cityos_acquisition.codecs.errors import DecodeError
from cityos_acquisition.codecs.timestamps import parse_timestamp
from cityos_acquisition.expressions.functions import to_number
from cityos_acquisition.expressions.lexer import ExpressionError
from cityos_kernel.events.payloads import AttributeKind

NUMBER_TYPES = frozenset({"Number", "Float", "Integer", "number", "float", "integer", "Int"})
TEXT_TYPES = frozenset({"Text", "String", "string", "text"})
BOOLEAN_TYPES = frozenset({"Boolean", "boolean", "Bool"})
GEO_TYPES = frozenset({"geo:point", "geo:json", "GeoProperty", "geo:Point"})
RELATIONSHIP_TYPES = frozenset({"Relationship"})

_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


class ValueTypeError(DecodeError):
    """A measure that cannot be what its attribute says it is."""


def kind_of(attribute_type: str) -> AttributeKind:
    if attribute_type in GEO_TYPES:
        return "GeoProperty"
    if attribute_type in RELATIONSHIP_TYPES:
        return "Relationship"
    return "Property"


def _point(value: Any) -> dict[str, Any]:
    latitude: Any
    longitude: Any
    altitude: Any = None
    if isinstance(value, dict) and value.get("type") and "coordinates" in value:
        return value
    if isinstance(value, dict) and "latitude" in value and "longitude" in value:
        latitude, longitude, altitude = value["latitude"], value["longitude"], value.get("altitude")
    elif isinstance(value, str) and "," in value:
        latitude, longitude = (part.strip() for part in value.split(",", 1))
    elif isinstance(value, list | tuple) and len(value) >= 2:
        latitude, longitude = value[0], value[1]
    else:
        raise ValueTypeError(f'{value!r} is not a point ("lat, lon" or a GeoJSON Point)')
    try:
        lat, lon = float(to_number(latitude)), float(to_number(longitude))
    except ExpressionError as exc:
        raise ValueTypeError(f"{value!r} is not a point: {exc.reason}") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueTypeError(f"{value!r} is outside latitude/longitude bounds")
    coordinates = [lon, lat] if altitude is None else [lon, lat, float(to_number(altitude))]
    return {"type": "Point", "coordinates": coordinates}


def cast_value(value: Any, attribute_type: str) -> Any:
    """The value as its declared type; :class:`ValueTypeError` when it cannot be."""
    if attribute_type in NUMBER_TYPES:
        try:
            number = to_number(value)
        except ExpressionError as exc:
            raise ValueTypeError(f"expected a number: {exc.reason}") from exc
        if attribute_type.lower() in {"integer", "int"}:
            if float(number) != int(number):
                raise ValueTypeError(f"expected an integer, got {value!r}")
            return int(number)
        return number
    if attribute_type in BOOLEAN_TYPES:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueTypeError(f"expected a boolean, got {value!r}")
    if attribute_type in TEXT_TYPES:
        return value if isinstance(value, str) else str(value)
    if attribute_type in GEO_TYPES:
        return _point(value)
    if attribute_type == "DateTime":
        parsed = parse_timestamp(value)
        if parsed is None:
            raise ValueTypeError(f"expected a date-time, got {value!r}")
        return parsed.isoformat().replace("+00:00", "Z")
    return value
