"""Ids, types, scopes, attrs and every geo-query relationship on a real PostGIS."""

from __future__ import annotations

import json

import pytest

from tests.knowledge.query.city import (
    AIR_BARCELONA,
    AIR_ESPANA,
    AIR_SOL,
    LIGHT_RETIRO,
    LIGHT_SOL,
    PARK_RETIRO,
    RETIRO,
    SOL,
    SPOT_ATOCHA,
    SPOT_SOL,
    City,
)

pytestmark = pytest.mark.postgres

LIVE = {
    AIR_SOL,
    AIR_ESPANA,
    AIR_BARCELONA,
    SPOT_SOL,
    SPOT_ATOCHA,
    LIGHT_RETIRO,
    LIGHT_SOL,
    PARK_RETIRO,
}


def test_deleted_entities_are_never_returned(city: City) -> None:
    assert len(city.all_ids()) == len(LIVE) + 1
    assert city.ids(type="AirQualityObserved") == {AIR_SOL, AIR_ESPANA, AIR_BARCELONA}
    assert city.ids(idPattern=".*") == LIVE


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("Streetlight", {LIGHT_RETIRO, LIGHT_SOL}),
        ("ParkingSpot,Streetlight", {SPOT_SOL, SPOT_ATOCHA, LIGHT_RETIRO, LIGHT_SOL}),
        ("ParkingSpot|Park", {SPOT_SOL, SPOT_ATOCHA, PARK_RETIRO}),
        ("Streetlight;ElectricDevice", {LIGHT_RETIRO}),
        ("(Streetlight;ElectricDevice)|Park", {LIGHT_RETIRO, PARK_RETIRO}),
        ("(Streetlight,Park);ElectricDevice", {LIGHT_RETIRO}),
        ("Vehicle", set()),
        ("*", LIVE),
    ],
)
def test_type_selections(city: City, selection: str, expected: set[str]) -> None:
    assert city.ids(type=selection) == expected


@pytest.mark.parametrize(
    ("scope_q", "expected"),
    [
        ("/Madrid/Centro/Sol", {AIR_SOL}),
        ("/Madrid", set()),
        ("/Madrid/#", {AIR_SOL, AIR_ESPANA, SPOT_ATOCHA}),
        ("/Madrid/+/PlazaEspana", {AIR_ESPANA}),
        ("/+/+/Sol", {AIR_SOL}),
        ("/CompanyA/#", {AIR_ESPANA}),
        ("/#", {AIR_SOL, AIR_ESPANA, AIR_BARCELONA, SPOT_ATOCHA}),
        ("/Madrid/Moncloa/PlazaEspana;/CompanyA/Sensors", {AIR_ESPANA}),
        ("/Madrid/Centro/Sol;/CompanyA/#", set()),
        ("/Madrid/Centro/Sol,/Barcelona/#", {AIR_SOL, AIR_BARCELONA}),
        (
            "(/Madrid/Moncloa/PlazaEspana;/CompanyA/#)|/Barcelona/Eixample",
            {AIR_ESPANA, AIR_BARCELONA},
        ),
    ],
)
def test_scope_queries(city: City, scope_q: str, expected: set[str]) -> None:
    assert city.ids(scopeQ=scope_q) == expected


def test_ids_id_patterns_and_attrs(city: City) -> None:
    assert city.ids(id=f"{AIR_SOL},{SPOT_SOL},urn:ngsi-ld:Nothing:1") == {AIR_SOL, SPOT_SOL}
    assert city.ids(idPattern="^urn:ngsi-ld:ParkingSpot:") == {SPOT_SOL, SPOT_ATOCHA}
    assert city.ids(idPattern="(?i)STREETLIGHT:SOL") == {LIGHT_SOL}
    assert city.ids(attrs="powerState") == {LIGHT_RETIRO, LIGHT_SOL}
    assert city.ids(attrs="status,lanternHeight") == {
        SPOT_SOL,
        SPOT_ATOCHA,
        LIGHT_RETIRO,
        LIGHT_SOL,
    }
    assert city.ids(type="Streetlight", id=AIR_SOL) == set()


SQUARE_AROUND_SOL = [
    [[-3.706, 40.415], [-3.702, 40.415], [-3.702, 40.419], [-3.706, 40.419], [-3.706, 40.415]]
]
# Half inside the park, half outside (to the west of it).
ACROSS_RETIRO_WEST_EDGE = [
    [
        [-3.6950, 40.4100],
        [-3.6900, 40.4100],
        [-3.6900, 40.4150],
        [-3.6950, 40.4150],
        [-3.6950, 40.4100],
    ]
]


def geo(city: City, georel: str, geometry: str, coordinates: object, **extra: str) -> set[str]:
    return city.ids(georel=georel, geometry=geometry, coordinates=json.dumps(coordinates), **extra)


def test_near_max_distance_measures_metres_on_the_spheroid(city: City) -> None:
    # The parking spot is about 30 m from Puerta del Sol, the streetlight about 25 m.
    assert geo(city, "near;maxDistance==20", "Point", SOL) == {AIR_SOL}
    assert geo(city, "near;maxDistance==100", "Point", SOL) == {AIR_SOL, SPOT_SOL, LIGHT_SOL}
    # Plaza de España is about 1 km from Sol; Barcelona about 505 km.
    assert AIR_ESPANA not in geo(city, "near;maxDistance==900", "Point", SOL)
    assert AIR_ESPANA in geo(city, "near;maxDistance==1100", "Point", SOL)
    assert AIR_BARCELONA not in geo(city, "near;maxDistance==500000", "Point", SOL)
    assert AIR_BARCELONA in geo(city, "near;maxDistance==510000", "Point", SOL)


def test_near_min_distance(city: City) -> None:
    assert geo(city, "near;minDistance==5000", "Point", SOL) == {AIR_BARCELONA}
    assert geo(city, "near;minDistance==1500", "Point", SOL, type="AirQualityObserved") == {
        AIR_BARCELONA
    }


def test_near_a_line_measures_from_its_closest_point(city: City) -> None:
    # An east-west line ending 170 m south of Sol; its first position is 8 km away.
    line = [[-3.80, 40.4153], [-3.7038, 40.4153]]
    found = geo(city, "near;maxDistance==200", "LineString", line)
    assert found == {AIR_SOL, SPOT_SOL, LIGHT_SOL}


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "expected"),
    [
        ("within", "Polygon", RETIRO, {LIGHT_RETIRO, PARK_RETIRO}),
        ("within", "Polygon", SQUARE_AROUND_SOL, {AIR_SOL, SPOT_SOL, LIGHT_SOL}),
        (
            "within",
            "MultiPolygon",
            [RETIRO, SQUARE_AROUND_SOL],
            {AIR_SOL, SPOT_SOL, LIGHT_SOL, LIGHT_RETIRO, PARK_RETIRO},
        ),
        ("contains", "Point", [-3.68, 40.41], {PARK_RETIRO}),
        ("contains", "Point", SOL, {AIR_SOL}),
        ("intersects", "Polygon", ACROSS_RETIRO_WEST_EDGE, {PARK_RETIRO}),
        (
            "intersects",
            "LineString",
            [[-3.70, 40.4153], [-3.67, 40.4153]],
            {PARK_RETIRO, LIGHT_RETIRO},
        ),
        ("overlaps", "Polygon", ACROSS_RETIRO_WEST_EDGE, {PARK_RETIRO}),
        ("overlaps", "Polygon", RETIRO, set()),
        ("equals", "Polygon", RETIRO, {PARK_RETIRO}),
        ("equals", "Point", SOL, {AIR_SOL}),
        ("disjoint", "Polygon", RETIRO, LIVE - {LIGHT_RETIRO, PARK_RETIRO}),
    ],
)
def test_geometric_relationships(
    city: City, georel: str, geometry: str, coordinates: object, expected: set[str]
) -> None:
    assert geo(city, georel, geometry, coordinates) == expected


def test_geoproperty_selects_another_geo_property(city: City) -> None:
    inside_lit_area = [-3.6845, 40.4152]
    assert geo(city, "intersects", "Point", inside_lit_area) == {PARK_RETIRO}
    assert geo(city, "intersects", "Point", inside_lit_area, geoproperty="illuminatedArea") == {
        LIGHT_RETIRO
    }
    # Entities without that GeoProperty never match, not even "disjoint".
    assert geo(city, "disjoint", "Point", SOL, geoproperty="illuminatedArea") == {LIGHT_RETIRO}


def test_geo_combines_with_q_and_type(city: City) -> None:
    assert geo(
        city, "near;maxDistance==2000", "Point", SOL, type="AirQualityObserved", q="NO2>40"
    ) == {AIR_SOL}
    assert geo(city, "within", "Polygon", RETIRO, q='powerState=="on"') == {LIGHT_RETIRO}
