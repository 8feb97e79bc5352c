"""The WHERE clause of a context query: ids, types, scopes, attrs, ``q`` and geo-queries.

Types and scopes use the GIN-indexed arrays of ``entities`` (``@>``, ``&&``); geo-queries
use the GiST-indexed ``attributes.geometry`` of the target GeoProperty. ``near`` measures
metres on the WGS 84 spheroid (``ST_DWithin`` on geography) after an index-backed bounding
box that is proven to contain every candidate; the other relationships are the PostGIS
predicates of the same names (``ST_Within(target, reference)``…), evaluated in
longitude/latitude as GeoJSON geometries are.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import Float, Text, and_, any_, exists, func, literal, not_, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.query.geo import GeoQuery, GeoRelation
from cityos_knowledge.query.nodes import And, Or
from cityos_knowledge.query.params import EntityQuery
from cityos_knowledge.query.selectors import EntityType, ScopePattern, ScopeSelection, TypeSelection
from cityos_knowledge.query.shapes import bound
from cityos_knowledge.query.targets import Expander, attribute_exists
from cityos_knowledge.query.translate import Condition, q_condition
from cityos_knowledge.store.tables import LIVE_ENTITY, attributes, entities

#: Fewest metres in a degree of latitude on WGS 84 (at the equator), rounded down.
_METRES_PER_DEGREE = 110_000.0
#: Beyond this latitude a search box spans every longitude.
_POLAR_LATITUDE = 89.0

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
    target = attributes.c.geometry
    geojson = bound(query, GeoQuery.geojson, Text())
    reference = func.ST_SetSRID(func.ST_GeomFromGeoJSON(geojson), 4326)
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


def _distance(query: GeoQuery) -> float:
    distance = query.max_distance if query.max_distance is not None else query.min_distance
    assert distance is not None  # the parser requires exactly one
    return distance


def _search_box(query: GeoQuery) -> ColumnElement[Any]:
    """``ST_MakeEnvelope`` of :func:`search_box` (each edge a parameter derived from the query)."""
    return func.ST_MakeEnvelope(
        *(bound(query, edge, Float()) for edge in (_west, _south, _east, _north)), 4326
    )


def _west(query: GeoQuery) -> float:
    return search_box(query)[0]


def _south(query: GeoQuery) -> float:
    return search_box(query)[1]


def _east(query: GeoQuery) -> float:
    return search_box(query)[2]


def _north(query: GeoQuery) -> float:
    return search_box(query)[3]


def search_box(query: GeoQuery) -> tuple[float, float, float, float]:
    """West, south, east, north of a box holding every point within the maximum distance.

    A degree of latitude is at least 110.57 km and a degree of longitude at latitude φ at
    least 111.3·cos φ km, so widening by the distance over these (rounded down) never
    loses a candidate; near a pole or across the antimeridian the box spans all longitudes.
    """
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
