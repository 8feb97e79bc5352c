"""Geo-query parameters and the whole Query Entities parameter set."""

from __future__ import annotations

import pytest

from cityos_knowledge.errors import TooManyResultsError
from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.geo import GeometryType, GeoRelation, parse_geo_query
from cityos_knowledge.query.params import (
    DEFAULT_LIMIT,
    EntityQuery,
    parse_entity_query,
)
from cityos_knowledge.query.selectors import EntityType

PUERTA_DEL_SOL = "[-3.7038,40.4168]"
SQUARE = "[[[-3.71,40.41],[-3.70,40.41],[-3.70,40.42],[-3.71,40.42],[-3.71,40.41]]]"


def test_near_with_max_or_min_distance() -> None:
    near = parse_geo_query("near;maxDistance==2000", "Point", PUERTA_DEL_SOL)
    assert near is not None
    assert (near.relation, near.max_distance, near.min_distance) == (GeoRelation.NEAR, 2000, None)
    assert near.geoproperty == "location"
    assert near.geojson() == '{"type": "Point", "coordinates": [-3.7038, 40.4168]}'
    far = parse_geo_query("near;minDistance==0.5", "Point", PUERTA_DEL_SOL, "observationSpace")
    assert far is not None
    assert (far.min_distance, far.max_distance, far.geoproperty) == (0.5, None, "observationSpace")


@pytest.mark.parametrize(
    "relation", ["within", "contains", "intersects", "overlaps", "disjoint", "equals"]
)
def test_every_geometric_relationship(relation: str) -> None:
    query = parse_geo_query(relation, "Polygon", SQUARE)
    assert query is not None
    assert query.relation is GeoRelation(relation)
    assert query.geometry is GeometryType.POLYGON


@pytest.mark.parametrize(
    ("geometry", "coordinates"),
    [
        ("Point", "[2.17,41.38]"),
        ("Point", "[2.17,41.38,12.5]"),
        ("MultiPoint", "[[2.17,41.38],[2.18,41.39]]"),
        ("LineString", "[[2.17,41.38],[2.18,41.39]]"),
        ("MultiLineString", "[[[2.17,41.38],[2.18,41.39]],[[2.1,41.3],[2.2,41.4]]]"),
        ("Polygon", SQUARE),
        ("MultiPolygon", f"[{SQUARE[1:-1]}],[{SQUARE[1:-1]}]]".replace("[[[[", "[[[[")),
    ],
)
def test_valid_geometries(geometry: str, coordinates: str) -> None:
    if geometry == "MultiPolygon":
        coordinates = f"[{SQUARE},{SQUARE}]"
    assert parse_geo_query("intersects", geometry, coordinates) is not None


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "parameter", "message"),
    [
        ("near;maxDistance==0", "Point", "[8,40]", "georel", "positive number"),
        ("near;maxDistance==-100", "Point", "[8,40]", "georel", "positive number"),
        ("near;maxDistance==inf", "Point", "[8,40]", "georel", "positive number"),
        ("near;maxDistance==1e400", "Point", "[8,40]", "georel", "positive number"),
        ("near;maxDistance==5;minDistance==1", "Point", "[8,40]", "georel", "positive number"),
        ("near", "Point", "[8,40]", "georel", "exactly one distance"),
        ("near;distance==5", "Point", "[8,40]", "georel", "exactly one distance"),
        ("touches", "Point", "[8,40]", "georel", "unknown relationship 'touches'"),
        ("within", "Circle", "[8,40]", "geometry", "unknown geometry 'Circle'"),
        ("within", "Point", "8,40", "coordinates", "not a JSON array"),
        ("within", "Point", "[8]", "coordinates", "expected a position"),
        ("within", "Point", "[8,NaN]", "coordinates", "not a JSON array"),
        ("within", "Point", '[8,"40"]', "coordinates", "numbers only"),
        ("within", "Point", "[8,true]", "coordinates", "numbers only"),
        ("within", "Point", "[40,181]", "coordinates", "latitude 181 is outside"),
        ("within", "Point", "[-181,40]", "coordinates", "longitude -181 is outside"),
        ("within", "LineString", "[[8,40]]", "coordinates", "needs at least 2 positions"),
        (
            "within",
            "Polygon",
            "[[[8,40],[9,40],[9,41],[8,41]]]",
            "coordinates",
            "must end where it starts",
        ),
        ("within", "Polygon", "[[[8,40],[9,40],[8,40]]]", "coordinates", "at least 4 positions"),
        (
            "within",
            "Polygon",
            "[[8,40],[9,40],[9,41],[8,40]]",
            "coordinates",
            r"coordinates\[0\]\[0\]",
        ),
        ("within", "MultiPolygon", "[]", "coordinates", "at least 1 members"),
    ],
)
def test_invalid_geo_queries(
    georel: str, geometry: str, coordinates: str, parameter: str, message: str
) -> None:
    with pytest.raises(InvalidQueryError, match=message) as caught:
        parse_geo_query(georel, geometry, coordinates)
    assert caught.value.parameter == parameter


def test_geo_parameters_go_together() -> None:
    assert parse_geo_query(None, None, None) is None
    with pytest.raises(InvalidQueryError, match="missing coordinates"):
        parse_geo_query("within", "Point", None)
    with pytest.raises(InvalidQueryError, match="geoproperty: needs georel"):
        parse_geo_query(None, None, None, "location")
    with pytest.raises(InvalidQueryError, match="is not an attribute name"):
        parse_geo_query("within", "Point", "[1,2]", "loc ation")


def test_a_whole_query_string() -> None:
    query = parse_entity_query(
        {
            "type": "AirQualityObserved",
            "q": "NO2>40",
            "georel": "near;maxDistance==1000",
            "geometry": "Point",
            "coordinates": PUERTA_DEL_SOL,
            "limit": "50",
            "offset": "100",
            "count": "true",
            "orderBy": "location;dist-asc",
            "orderFrom": PUERTA_DEL_SOL,
            "unrelated": "ignored",
        }
    )
    assert query.types == EntityType("AirQualityObserved")
    assert query.geo is not None
    assert (query.limit, query.offset, query.count) == (50, 100, True)
    assert query.order_from == (-3.7038, 40.4168)
    assert query.selects_something
    assert parse_entity_query({}) == EntityQuery()
    assert EntityQuery().limit == DEFAULT_LIMIT
    assert not EntityQuery().selects_something


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"limit": "-1"}, "limit: expected a non-negative integer"),
        ({"limit": "ten"}, "limit: expected a non-negative integer"),
        ({"offset": "1.5"}, "offset: expected a non-negative integer"),
        ({"limit": "0"}, "limit=0 is only allowed with count=true"),
        ({"count": "yes"}, "count: expected true or false"),
        ({"attrs": "a", "pick": "a"}, "attrs cannot be combined with pick or omit"),
        ({"pick": "a,b", "omit": "b"}, "'b' is both picked and omitted"),
        ({"orderBy": "location;dist-asc"}, "need orderFrom"),
        ({"idPattern": "urn:\x00"}, "control character"),
        ({"idPattern": ""}, "the pattern is empty"),
    ],
)
def test_invalid_parameter_combinations(parameters: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        parse_entity_query(parameters)


def test_limit_above_the_maximum_is_too_many_results() -> None:
    assert parse_entity_query({"limit": "0", "count": "true"}).limit == 0
    assert parse_entity_query({"limit": "1000"}).limit == 1000
    with pytest.raises(TooManyResultsError):
        parse_entity_query({"limit": "1001"})
    with pytest.raises(TooManyResultsError):
        parse_entity_query({"limit": "51"}, max_limit=50)
