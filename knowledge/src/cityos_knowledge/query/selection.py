"""The WHERE clause of a context query: ids, types, scopes, attrs, ``q`` and geo-queries.

Types and scopes use the GIN-indexed arrays of ``entities`` (``@>``, ``&&``); geo-queries
use the GiST-indexed ``attributes.geometry`` of the target GeoProperty. ``near`` measures
metres on the WGS 84 spheroid (``ST_DWithin`` on geography) after an index-backed bounding
box that is proven to contain every candidate — with ``maxDistance``, read from the narrow
``entity_locations`` and decided by a planar bound where it can (ADR 0064); the other
relationships are the PostGIS predicates of the same names (``ST_Within(target,
reference)``…), evaluated in longitude/latitude as GeoJSON geometries are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    Text,
    and_,
    any_,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.query.geo import GeometryType, GeoQuery, GeoRelation
from cityos_knowledge.query.nodes import And, Or
from cityos_knowledge.query.params import EntityQuery
from cityos_knowledge.query.selectors import EntityType, ScopePattern, ScopeSelection, TypeSelection
from cityos_knowledge.query.shapes import bound
from cityos_knowledge.query.targets import Expander, attribute_exists
from cityos_knowledge.query.translate import Condition, q_condition
from cityos_knowledge.store.tables import LIVE_ENTITY, attributes, entities, entity_locations

#: Fewest metres in a degree of latitude on WGS 84 (at the equator), rounded down.
_METRES_PER_DEGREE = 110_000.0
#: Beyond this latitude a search box spans every longitude.
_POLAR_LATITUDE = 89.0
#: ``entity_locations.position`` read as ``[longitude, latitude]``.
_COORDINATES = ARRAY(Float())  # subscripts as written: point[0], point[1]

_PREDICATES = {
    GeoRelation.WITHIN: func.ST_Within,
    GeoRelation.CONTAINS: func.ST_Contains,
    GeoRelation.INTERSECTS: func.ST_Intersects,
    GeoRelation.OVERLAPS: func.ST_Overlaps,
    GeoRelation.DISJOINT: func.ST_Disjoint,
    GeoRelation.EQUALS: func.ST_Equals,
}


def unexpanded(term: str) -> str:
    """The identity expander: names are used as written."""
    return term


def build_entity_filter(query: EntityQuery, *, expand: Expander = unexpanded) -> Condition:
    """The clause selecting the live entities ``query`` matches (bound parameters only)."""
    clauses: list[Condition] = [LIVE_ENTITY]
    if query.ids:
        clauses.append(entities.c.id == any_(bound(query, list, ARRAY(Text), field="ids")))
    if query.id_pattern is not None:
        clauses.append(entities.c.id.bool_op("~")(bound(query, str, Text(), field="id_pattern")))
    if query.types is not None:
        clauses.append(type_condition(query.types, expand))
    if query.scope_q is not None:
        clauses.append(scope_condition(query.scope_q))
    if query.attrs:
        names = [expand(name) for name in query.attrs]
        clauses.append(attribute_exists(attributes.c.name == any_(_text_array(names))))
    if query.q is not None:
        clauses.append(q_condition(query.q, expand))
    if query.geo is not None:
        clauses.append(geo_condition(query.geo, expand))
    return and_(*clauses)


def type_condition(selection: TypeSelection, expand: Expander) -> Condition:
    """Entity types: ``,``/``|`` any of them, ``;`` all of them (GIN ``&&`` and ``@>``)."""
    match selection:
        case EntityType(name):
            return entities.c.types.contains(_text_array([expand(name)]))
        case Or(terms) if all(isinstance(term, EntityType) for term in terms):
            names = [expand(term.name) for term in terms if isinstance(term, EntityType)]
            return entities.c.types.bool_op("&&")(_text_array(names))
        case Or(terms):
            return or_(*(type_condition(term, expand) for term in terms))
        case And(terms) if all(isinstance(term, EntityType) for term in terms):
            names = [expand(term.name) for term in terms if isinstance(term, EntityType)]
            return entities.c.types.contains(_text_array(names))
        case And(terms):
            return and_(*(type_condition(term, expand) for term in terms))
    raise AssertionError(selection)


def scope_condition(selection: ScopeSelection) -> Condition:
    """``scopeQ``: exact scopes through the GIN index, ``+``/``#`` patterns by regex."""
    match selection:
        case ScopePattern() as pattern if pattern.is_exact:
            return entities.c.scopes.contains(_text_array([str(pattern)]))
        case ScopePattern() as pattern:
            scope = func.unnest(entities.c.scopes).table_valued("value").render_derived("scope")
            regex = literal(_scope_regex(pattern), Text)
            return exists(
                select(literal(1)).select_from(scope).where(scope.c.value.bool_op("~")(regex))
            )
        case Or(terms):
            return or_(*(scope_condition(term) for term in terms))
        case And(terms):
            return and_(*(scope_condition(term) for term in terms))
    raise AssertionError(selection)


def _scope_regex(pattern: ScopePattern) -> str:
    levels = "".join(
        "/[^/]+" if level == "+" else "/" + re.escape(level) for level in pattern.levels
    )
    return f"^{levels}{'(/.+)?' if pattern.descendants else ''}$"


def geo_condition(query: GeoQuery, expand: Expander) -> Condition:
    """The entity has its ``geoproperty`` in ``relation`` with the reference geometry."""
    if query.relation is GeoRelation.NEAR and query.max_distance is not None:
        return entities.c.id == any_(func.array(_near_candidates(query, expand)))
    target = attributes.c.geometry
    reference = _reference(query)
    if query.relation is GeoRelation.NEAR:
        within = func.ST_DWithin(
            func.geography(target), func.geography(reference), bound(query, _distance, Float())
        )
        if query.max_distance is not None:
            relation: Condition = and_(target.bool_op("&&")(_search_box(query)), within)
        else:
            relation = not_(within)
    else:
        relation = _PREDICATES[query.relation](target, reference)
    # No "geometry IS NOT NULL": every relation is NULL, hence false, on a NULL geometry,
    # and the extra index condition would keep a (name, geometry) index out of the plan.
    selects = attributes.c.name == expand(query.geoproperty)
    if query.relation is GeoRelation.DISJOINT or query.min_distance is not None:
        return attribute_exists(selects, relation)
    # A bounded relation is answered from the GiST index first, once, as an array of ids:
    # given the choice, PostgreSQL misjudges how selective attribute comparisons are (one
    # value column serves every attribute name) and scans entities instead.
    candidates = (
        select(attributes.c.entity_id).where(selects, relation).correlate(None).scalar_subquery()
    )
    return entities.c.id == any_(func.array(candidates))


def _reference(query: GeoQuery) -> ColumnElement[Any]:
    geojson = bound(query, GeoQuery.geojson, Text())
    return func.ST_SetSRID(func.ST_GeomFromGeoJSON(geojson), 4326)


def _near_candidates(query: GeoQuery, expand: Expander) -> ColumnElement[Any]:
    """Ids of the entities whose geoproperty is within ``maxDistance`` (ADR 0064).

    Read from the narrow ``entity_locations``: Points from an index-only scan of their
    ``position`` in the search box, other geometries from their own GiST index. Around a
    Point, two planar bounds decide most candidates (:class:`NearBounds`); only those
    between them are tested with ``ST_DWithin`` on the spheroid.
    """
    located = entity_locations.c
    selects = located.name == expand(query.geoproperty)
    distance = bound(query, _distance, Float())
    longitude = type_coerce(located.position, _COORDINATES)[0]
    latitude = type_coerce(located.position, _COORDINATES)[1]
    point = func.ST_SetSRID(func.ST_MakePoint(longitude, latitude), 4326)
    if query.geometry is GeometryType.POINT:
        reference_longitude = bound(query, _point_longitude, Float())
        reference_latitude = bound(query, _point_latitude, Float())
        centre = func.ST_SetSRID(func.ST_MakePoint(reference_longitude, reference_latitude), 4326)
        # Once per execution, not per candidate: a generic plan (ADR 0065) does not fold it.
        reference = select(func.geography(centre)).scalar_subquery()
        east_west = longitude - reference_longitude
        north_south = latitude - reference_latitude

        def planar(
            x_scale: Callable[[GeoQuery], float], y_scale: Callable[[GeoQuery], float]
        ) -> Condition:
            return (
                east_west * east_west * bound(query, x_scale, Float())
                + north_south * north_south * bound(query, y_scale, Float())
            ) <= literal(1.0, Float())

        within: Condition = or_(
            planar(_inner_x, _inner_y),
            and_(
                planar(_outer_x, _outer_y),
                func.ST_DWithin(func.geography(point), reference, distance),
            ),
        )
    else:
        reference = select(func.geography(_reference(query))).scalar_subquery()
        within = func.ST_DWithin(func.geography(point), reference, distance)
    west, south, east, north = _search_edges(query)  # one set of parameters for both
    box = func.box(func.point(west, south), func.point(east, north))
    points = select(located.entity_id).where(selects, located.position.op("<@")(box), within)
    shapes = select(located.entity_id).where(
        selects,
        located.position.is_(None),
        located.geometry.bool_op("&&")(func.ST_MakeEnvelope(west, south, east, north, 4326)),
        func.ST_DWithin(func.geography(located.geometry), reference, distance),
    )
    return union_all(points, shapes).scalar_subquery()


#: Semi-axis and first eccentricity squared of the WGS 84 ellipsoid.
_WGS84_A = 6_378_137.0
_WGS84_E2 = 6.694_379_990_14e-3
#: Widens the bounds' margins: far more than float rounding or PostGIS's geodesic error.
_SAFETY = 1e-6


def _parallel(latitude: float) -> float:
    """Metres per radian of longitude at ``latitude`` (degrees): ``N(φ)·cos φ``."""
    sine = math.sin(math.radians(latitude))
    return _WGS84_A * math.cos(math.radians(latitude)) / math.sqrt(1.0 - _WGS84_E2 * sine * sine)


def _meridian(latitude: float) -> float:
    """Metres per radian of latitude at ``latitude`` (degrees): ``M(φ)``."""
    sine = math.sin(math.radians(latitude))
    return _WGS84_A * (1.0 - _WGS84_E2) / math.pow(1.0 - _WGS84_E2 * sine * sine, 1.5)


def _band(south: float, north: float) -> tuple[float, float]:
    """The latitudes of a band nearest to and farthest from the equator (absolute values)."""
    nearest = 0.0 if south <= 0.0 <= north else min(abs(south), abs(north))
    return nearest, max(abs(south), abs(north))


def near_scales(south: float, north: float) -> tuple[float, float]:
    """The largest metres per degree of longitude and of latitude between two latitudes.

    A parallel's radius ``N(φ)·cos φ`` shrinks away from the equator; the meridian's radius
    of curvature ``M(φ)`` grows. Both are increased by :data:`_SAFETY`.
    """
    nearest, farthest = _band(south, north)
    per_degree = math.pi / 180.0 * (1.0 + _SAFETY)
    return _parallel(nearest) * per_degree, _meridian(farthest) * per_degree


def near_minimum_scales(south: float, north: float) -> tuple[float, float]:
    """The smallest metres per degree of longitude and of latitude between two latitudes.

    The counterpart of :func:`near_scales`: the parallel at the latitude farthest from the
    equator, the meridian at the nearest; both are decreased by :data:`_SAFETY`.
    """
    nearest, farthest = _band(south, north)
    per_degree = math.pi / 180.0 * (1.0 - _SAFETY)
    return max(0.0, _parallel(farthest)) * per_degree, _meridian(nearest) * per_degree


@dataclass(frozen=True, slots=True)
class NearBounds:
    """Two planar bounds of a ``near;maxDistance`` query around a Point.

    With ``dx``/``dy`` a position's longitude/latitude minus the point's (degrees):

    - ``dx²·inner_x + dy²·inner_y <= 1`` proves the position within the distance. In the
      box, the geodesic is no longer than the path along which longitude and latitude
      change linearly, whose length is at most ``sqrt((kx·dx)² + (ky·dy)²)`` with ``kx``,
      ``ky`` the largest metres per degree over the box's latitudes (:func:`near_scales`);
      the distance is shrunk by :data:`_SAFETY`.
    - ``dx²·outer_x + dy²·outer_y > 1`` proves it beyond the distance. A geodesic of length
      at most ``d`` stays within ``d`` of the point, hence in the box's latitude band;
      there ``ds² = M(φ)²dφ² + (N(φ)cos φ)²dλ² >= a²dφ² + b²dλ²`` with ``a``, ``b`` the
      smallest scales over the band (:func:`near_minimum_scales`), so any path in it is at
      least ``sqrt((a·dy)² + (b·dx)²)`` long. When the box spans every longitude (near a
      pole, across the antimeridian) ``dx`` may wrap, and ``b`` is taken as 0. The
      distance is raised by :data:`_SAFETY`.

    Only the candidates between the bounds are left to ``ST_DWithin`` on the spheroid.
    """

    inner_x: float
    inner_y: float
    outer_x: float
    outer_y: float


#: The last query's bounds: a query's parameters derive from them four times.
_last_bounds: tuple[GeoQuery, NearBounds] | None = None


def near_bounds(query: GeoQuery) -> NearBounds:
    """The :class:`NearBounds` of a ``near;maxDistance`` query around a Point."""
    global _last_bounds
    last = _last_bounds  # one read: another thread may replace it meanwhile
    if last is not None and last[0] is query:
        return last[1]
    west, south, east, north = search_box(query)
    x_max, y_max = near_scales(south, north)
    x_min, y_min = near_minimum_scales(south, north)
    if west == -180.0 and east == 180.0:
        x_min = 0.0
    inner = (_distance(query) * (1.0 - _SAFETY)) ** 2
    outer = (_distance(query) * (1.0 + _SAFETY)) ** 2
    bounds = NearBounds(
        x_max * x_max / inner,
        y_max * y_max / inner,
        x_min * x_min / outer,
        y_min * y_min / outer,
    )
    _last_bounds = (query, bounds)
    return bounds


def _point_longitude(query: GeoQuery) -> float:
    return float(query.coordinates[0])


def _point_latitude(query: GeoQuery) -> float:
    return float(query.coordinates[1])


def _inner_x(query: GeoQuery) -> float:
    return near_bounds(query).inner_x


def _inner_y(query: GeoQuery) -> float:
    return near_bounds(query).inner_y


def _outer_x(query: GeoQuery) -> float:
    return near_bounds(query).outer_x


def _outer_y(query: GeoQuery) -> float:
    return near_bounds(query).outer_y


def _distance(query: GeoQuery) -> float:
    distance = query.max_distance if query.max_distance is not None else query.min_distance
    assert distance is not None  # the parser requires exactly one
    return distance


def _search_box(query: GeoQuery) -> ColumnElement[Any]:
    """``ST_MakeEnvelope`` of :func:`search_box` (each edge a parameter derived from the query)."""
    return func.ST_MakeEnvelope(*_search_edges(query), 4326)


def _search_edges(query: GeoQuery) -> list[ColumnElement[Any]]:
    """West, south, east and north of :func:`search_box` as parameters."""
    return [bound(query, edge, Float()) for edge in (_west, _south, _east, _north)]


def _west(query: GeoQuery) -> float:
    return search_box(query)[0]


def _south(query: GeoQuery) -> float:
    return search_box(query)[1]


def _east(query: GeoQuery) -> float:
    return search_box(query)[2]


def _north(query: GeoQuery) -> float:
    return search_box(query)[3]


#: The last query's search box: a query's parameters derive from it ten times.
_last_box: tuple[GeoQuery, tuple[float, float, float, float]] | None = None


def search_box(query: GeoQuery) -> tuple[float, float, float, float]:
    """West, south, east, north of a box holding every point within the maximum distance.

    A degree of latitude is at least 110.57 km and a degree of longitude at latitude φ at
    least 111.3·cos φ km, so widening by the distance over these (rounded down) never
    loses a candidate; near a pole or across the antimeridian the box spans all longitudes.
    """
    global _last_box
    last = _last_box  # one read: another thread may replace it meanwhile
    if last is not None and last[0] is query:
        return last[1]
    box = _box_of(query)
    _last_box = (query, box)
    return box


def _box_of(query: GeoQuery) -> tuple[float, float, float, float]:
    distance = _distance(query)
    positions = query.positions()
    longitudes = [lon for lon, _ in positions]
    latitudes = [lat for _, lat in positions]
    lat_margin = distance / _METRES_PER_DEGREE
    south = max(-90.0, min(latitudes) - lat_margin)
    north = min(90.0, max(latitudes) + lat_margin)
    extreme = max(abs(south), abs(north))
    west, east = -180.0, 180.0
    if extreme < _POLAR_LATITUDE:
        lon_margin = distance / (_METRES_PER_DEGREE * math.cos(math.radians(extreme)))
        if min(longitudes) - lon_margin >= -180 and max(longitudes) + lon_margin <= 180:
            west, east = min(longitudes) - lon_margin, max(longitudes) + lon_margin
    return west, south, east, north


def _text_array(values: list[str]) -> ColumnElement[Any]:
    return literal(values, ARRAY(Text))
