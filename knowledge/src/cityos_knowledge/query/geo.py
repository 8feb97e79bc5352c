"""Geo-queries (ETSI GS CIM 009 §4.10): ``georel``, ``geometry``, ``coordinates``, ``geoproperty``.

``georel`` is ``near;maxDistance==<metres>``, ``near;minDistance==<metres>`` (exactly one
distance, a positive number), or one of ``within``, ``contains``, ``intersects``,
``overlaps``, ``disjoint``, ``equals``. ``geometry`` is a GeoJSON geometry type and
``coordinates`` its JSON coordinates, validated here as RFC 7946 says (positions are
``[longitude, latitude]`` within range, line strings have two positions or more, polygon rings
are closed with four positions or more). The target is the entity's ``geoproperty``,
``location`` by default.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cityos_knowledge.query.errors import InvalidQueryError

DEFAULT_GEOPROPERTY = "location"
#: Longest ``coordinates`` value accepted (a detailed city boundary fits easily).
MAX_COORDINATES_LENGTH = 200_000

_NEAR = re.compile(r"near;(maxDistance|minDistance)==(.*)")
_POSITIVE_NUMBER = re.compile(r"(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_GEOPROPERTY = re.compile(r"[^\W\d][\w\-:]*|[A-Za-z][A-Za-z0-9+.\-]*:\S+")


class GeoRelation(enum.Enum):
    NEAR = "near"
    WITHIN = "within"
    CONTAINS = "contains"
    INTERSECTS = "intersects"
    OVERLAPS = "overlaps"
    DISJOINT = "disjoint"
    EQUALS = "equals"


class GeometryType(enum.Enum):
    POINT = "Point"
    MULTI_POINT = "MultiPoint"
    LINE_STRING = "LineString"
    MULTI_LINE_STRING = "MultiLineString"
    POLYGON = "Polygon"
    MULTI_POLYGON = "MultiPolygon"


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """A validated geo-query; ``coordinates`` are plain nested lists of floats."""

    relation: GeoRelation
    geometry: GeometryType
    coordinates: Any
    geoproperty: str = DEFAULT_GEOPROPERTY
    max_distance: float | None = None
    min_distance: float | None = None

    def geojson(self) -> str:
        """The reference geometry as GeoJSON text (what PostGIS reads)."""
        return json.dumps({"type": self.geometry.value, "coordinates": self.coordinates})

    def positions(self) -> list[tuple[float, float]]:
        """Every position of the reference geometry (for bounding boxes)."""
        found: list[tuple[float, float]] = []
        _collect_positions(self.coordinates, found)
        return found


def parse_geo_query(
    georel: str | None,
    geometry: str | None,
    coordinates: str | None,
    geoproperty: str | None = None,
) -> GeoQuery | None:
    """Parse the geo-query parameters; ``None`` when none of them is given."""
    if georel is None or geometry is None or coordinates is None:
        given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
        if all(value is None for value in given.values()):
            if geoproperty is not None:
                raise InvalidQueryError("geoproperty", "needs georel, geometry and coordinates")
            return None
        missing = [name for name, value in given.items() if value is None]
        raise InvalidQueryError(
            "geo-query",
            "georel, geometry and coordinates go together; missing " + ", ".join(missing),
        )
    relation, max_distance, min_distance = _parse_georel_text(georel)
    geometry_type = _parse_geometry(geometry)
    parsed = parse_coordinates(geometry_type, coordinates)
    target = DEFAULT_GEOPROPERTY if geoproperty is None else geoproperty
    if target is not DEFAULT_GEOPROPERTY and not _GEOPROPERTY.fullmatch(target):
        raise InvalidQueryError("geoproperty", f"{target!r} is not an attribute name")
    return GeoQuery(relation, geometry_type, parsed, target, max_distance, min_distance)


@functools.lru_cache(maxsize=256)
def _parse_georel_cached(text: str) -> tuple[GeoRelation, float | None, float | None]:
    return _parse_georel(text)


def _parse_georel_text(text: str) -> tuple[GeoRelation, float | None, float | None]:
    """:func:`_parse_georel`, its results kept by text (a handful of distinct values)."""
    return _parse_georel_cached(text) if len(text) <= 64 else _parse_georel(text)


def _parse_georel(text: str) -> tuple[GeoRelation, float | None, float | None]:
    match = _NEAR.fullmatch(text)
    if match is not None:
        distance = _positive_number(match.group(2), text, match.start(2))
        if match.group(1) == "maxDistance":
            return GeoRelation.NEAR, distance, None
        return GeoRelation.NEAR, None, distance
    if text.startswith("near"):
        raise InvalidQueryError(
            "georel",
            "near takes exactly one distance: near;maxDistance==<metres> or "
            "near;minDistance==<metres>",
            text=text,
            position=0,
        )
    try:
        return GeoRelation(text), None, None
    except ValueError:
        names = ", ".join(relation.value for relation in GeoRelation)
        raise InvalidQueryError(
            "georel", f"unknown relationship {text!r}; expected one of {names}"
        ) from None


def _positive_number(text: str, georel: str, position: int) -> float:
    if _POSITIVE_NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value) and value > 0:
            return value
    raise InvalidQueryError(
        "georel", "the distance must be a positive number of metres", text=georel, position=position
    )


def _parse_geometry(text: str) -> GeometryType:
    try:
        return GeometryType(text)
    except ValueError:
        names = ", ".join(kind.value for kind in GeometryType)
        raise InvalidQueryError(
            "geometry", f"unknown geometry {text!r}; expected one of {names}"
        ) from None


def parse_coordinates(geometry: GeometryType, text: str) -> Any:
    """Parse and validate ``coordinates`` for ``geometry``; errors name the bad element."""
    if len(text) > MAX_COORDINATES_LENGTH:
        raise InvalidQueryError("coordinates", f"longer than {MAX_COORDINATES_LENGTH} characters")
    try:
        value = _COORDINATES_DECODER.decode(text)
    except ValueError as exc:
        raise InvalidQueryError("coordinates", f"not a JSON array ({exc})") from None
    validate = _VALIDATORS[geometry]
    validate(value, "coordinates")
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


#: ``json.loads(text, parse_constant=…)`` without building a decoder per call.
_COORDINATES_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


_Validator = Callable[[Any, str], None]


def _fail(where: str, reason: str) -> InvalidQueryError:
    return InvalidQueryError("coordinates", f"{where}: {reason}")


def _position(value: Any, where: str) -> None:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise _fail(where, "expected a position [longitude, latitude]")
    if not all(isinstance(item, int | float) and not isinstance(item, bool) for item in value):
        raise _fail(where, "a position holds numbers only")
    longitude, latitude = value[0], value[1]
    if not -180 <= longitude <= 180:
        raise _fail(where, f"longitude {longitude} is outside [-180, 180]")
    if not -90 <= latitude <= 90:
        raise _fail(where, f"latitude {latitude} is outside [-90, 90]")


def _array(value: Any, where: str, minimum: int, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"expected an array of {what}")
    if len(value) < minimum:
        raise _fail(where, f"needs at least {minimum} {what}")
    return value


def _positions(value: Any, where: str, minimum: int) -> None:
    for index, item in enumerate(_array(value, where, 0, "positions")):
        _position(item, f"{where}[{index}]")
    _array(value, where, minimum, "positions")


def _line_string(value: Any, where: str) -> None:
    _positions(value, where, 2)


def _ring(value: Any, where: str) -> None:
    _positions(value, where, 4)
    if value[0][:2] != value[-1][:2]:
        raise _fail(where, "a polygon ring must end where it starts")


def _polygon(value: Any, where: str) -> None:
    for index, ring in enumerate(_array(value, where, 1, "linear rings")):
        _ring(ring, f"{where}[{index}]")


def _many(part: _Validator) -> _Validator:
    def validate(value: Any, where: str) -> None:
        for index, item in enumerate(_array(value, where, 1, "members")):
            part(item, f"{where}[{index}]")

    return validate


_VALIDATORS: dict[GeometryType, _Validator] = {
    GeometryType.POINT: _position,
    GeometryType.MULTI_POINT: lambda value, where: _positions(value, where, 1),
    GeometryType.LINE_STRING: _line_string,
    GeometryType.MULTI_LINE_STRING: _many(_line_string),
    GeometryType.POLYGON: _polygon,
    GeometryType.MULTI_POLYGON: _many(_polygon),
}


def _collect_positions(value: Any, found: list[tuple[float, float]]) -> None:
    if value and isinstance(value[0], int | float):
        found.append((float(value[0]), float(value[1])))
        return
    for item in value:
        _collect_positions(item, found)
