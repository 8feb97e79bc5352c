"""GeoJSON geometry validation for GeoProperty values (RFC 7946), before PostGIS sees them.

PostGIS would reject much of this too, but with an error that aborts the whole transaction
and says little; validating here gives the client a ``BadRequestData`` naming the problem,
and keeps one bad observation from failing a whole ingest batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cityos_knowledge.errors import BadRequestDataError

GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)

#: GeometryCollections nest; hostile input must not exhaust the stack.
MAX_DEPTH = 8


def validate_geometry(value: Any, where: str = "GeoProperty value", depth: int = 0) -> None:
    """Raise BadRequestDataError unless ``value`` is a valid GeoJSON geometry object."""
    if not isinstance(value, dict):
        raise BadRequestDataError(f"{where}: a GeoJSON geometry must be a JSON object")
    kind = value.get("type")
    if kind not in GEOMETRY_TYPES:
        raise BadRequestDataError(
            f"{where}: unknown GeoJSON geometry type {kind!r}; "
            f"expected one of {', '.join(GEOMETRY_TYPES)}"
        )
    if kind == "GeometryCollection":
        if depth >= MAX_DEPTH:
            raise BadRequestDataError(f"{where}: GeometryCollections nested too deeply")
        members = value.get("geometries")
        if not isinstance(members, list):
            raise BadRequestDataError(f"{where}: a GeometryCollection needs a geometries array")
        for index, member in enumerate(members):
            validate_geometry(member, f"{where}.geometries[{index}]", depth + 1)
        return
    if "coordinates" not in value:
        raise BadRequestDataError(f"{where}: a {kind} needs coordinates")
    _VALIDATORS[kind](value["coordinates"], f"{where}.coordinates")


def _fail(where: str, reason: str) -> BadRequestDataError:
    return BadRequestDataError(f"{where}: {reason}")


def _position(value: Any, where: str) -> None:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise _fail(where, "a position is [longitude, latitude] or [longitude, latitude, altitude]")
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _fail(where, "position members must be numbers")
        if not math.isfinite(number):
            raise _fail(where, "position members must be finite numbers")
    longitude, latitude = value[0], value[1]
    if not -180 <= longitude <= 180 or not -90 <= latitude <= 90:
        raise _fail(where, "longitude must be within ±180 and latitude within ±90")


def _list(value: Any, where: str, minimum: int, what: str) -> list[Any]:
    if not isinstance(value, list) or len(value) < minimum:
        raise _fail(where, f"{what} needs at least {minimum} member(s)")
    return value


def _positions(value: Any, where: str, minimum: int, what: str) -> list[Any]:
    positions = _list(value, where, minimum, what)
    for index, position in enumerate(positions):
        _position(position, f"{where}[{index}]")
    return positions


def _line_string(value: Any, where: str) -> None:
    _positions(value, where, 2, "a LineString")


def _ring(value: Any, where: str) -> None:
    ring = _positions(value, where, 4, "a linear ring")
    if ring[0] != ring[-1]:
        raise _fail(where, "a linear ring must end where it starts")


def _polygon(value: Any, where: str) -> None:
    for index, ring in enumerate(_list(value, where, 1, "a Polygon")):
        _ring(ring, f"{where}[{index}]")


def _many(part: Callable[[Any, str], None], what: str) -> Callable[[Any, str], None]:
    def validate(value: Any, where: str) -> None:
        for index, member in enumerate(_list(value, where, 1, what)):
            part(member, f"{where}[{index}]")

    return validate


_VALIDATORS: dict[str, Callable[[Any, str], None]] = {
    "Point": _position,
    "MultiPoint": _many(_position, "a MultiPoint"),
    "LineString": _line_string,
    "MultiLineString": _many(_line_string, "a MultiLineString"),
    "Polygon": _polygon,
    "MultiPolygon": _many(_polygon, "a MultiPolygon"),
}
