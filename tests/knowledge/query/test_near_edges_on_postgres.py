"""``near;maxDistance`` gives exactly PostGIS's spheroid answer at the edge of the circle.

The near-query reads positions from ``entity_locations`` and skips ``ST_DWithin`` for those a
cheap planar bound proves inside, and for those another proves beyond (ADR 0064). Here
points are placed by PostGIS itself (``ST_Project`` on the spheroid) just inside and just
outside the distance and in the corners of the search box, in every direction, at several
latitudes, across the equator and the antimeridian and near both poles, and the query's
answer is compared with ``ST_DWithin`` on the geography of ``attributes.geometry``: the
definition the query had before the narrow table existed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from cityos.embedded import EmbeddedPostgres
from cityos_knowledge.entities.attributes import attribute_row
from cityos_knowledge.entities.repository import (
    insert_new_entities,
    refresh_documents,
    upsert_attributes,
)
from cityos_knowledge.query.selection import near_minimum_scales, near_scales
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import attributes
from tests.knowledge.query.city import CREATED, City, expand

pytestmark = pytest.mark.postgres

#: (longitude, latitude) of the reference points: equator, Madrid, Oslo-ish, near the pole,
#: next to the antimeridian (positions east of it have longitude -179.99…), Tierra del Fuego,
#: and so close to the north pole that the farthest circles cross it.
CENTRES = [
    (0.0, 0.0),
    (-3.7038, 40.4168),
    (10.75, 59.91),
    (25.0, 88.5),
    (179.9995, -16.5),
    (-68.3, -54.8),
    (120.0, 89.9999),
]
DISTANCES = [30.0, 500.0, 5000.0]
#: Relative offsets from the distance: the thin ring where the planar bounds cannot decide,
#: well inside and outside it, and out in the corners of the search box (at 45°, 135°…).
OFFSETS = [-0.2, -0.01, -1e-4, -1e-6, 1e-6, 1e-4, 0.01, 0.2, 0.38]
AZIMUTHS = range(0, 360, 15)


@pytest.fixture(scope="module")
def edges(postgres_server: EmbeddedPostgres, knowledge_template: str) -> Iterator[City]:
    name = f"test_near_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name, template=knowledge_template)
    store = KnowledgeStore.from_url(postgres_server.url(name))
    try:
        schema = store.tenants.ensure("edges")
        placed = [
            (f"urn:ngsi-ld:Point:{c}-{d}-{o}-{a}", (lon, lat), distance, offset, azimuth)
            for c, (lon, lat) in enumerate(CENTRES)
            for d, distance in enumerate(DISTANCES)
            for o, offset in enumerate(OFFSETS)
            for a, azimuth in enumerate(AZIMUTHS)
        ]
        with store.engine.begin() as connection:
            positions = connection.execute(
                text(
                    "SELECT ST_X(p::geometry), ST_Y(p::geometry) FROM unnest("
                    " CAST(:lons AS float8[]), CAST(:lats AS float8[]),"
                    " CAST(:distances AS float8[]), CAST(:azimuths AS float8[]))"
                    " WITH ORDINALITY AS t(lon, lat, distance, azimuth, n),"
                    " LATERAL ST_Project(ST_MakePoint(lon, lat)::geography, distance,"
                    "                    radians(azimuth)) AS p ORDER BY n"
                ),
                {
                    "lons": [centre[0] for _, centre, _, _, _ in placed],
                    "lats": [centre[1] for _, centre, _, _, _ in placed],
                    "distances": [d * (1 + o) for _, _, d, o, _ in placed],
                    "azimuths": [float(a) for _, _, _, _, a in placed],
                },
            ).all()
            bound = bind_schema(connection, schema)
            ids = [entity_id for entity_id, *_ in placed]
            insert_new_entities(bound, [(i, [expand("Point")], None) for i in ids], CREATED)
            rows = []
            for entity_id, (lon, lat) in zip(ids, positions, strict=True):
                value = {"type": "Point", "coordinates": [lon, lat]}
                location = {"type": "GeoProperty", "value": value}
                rows.append((entity_id, attribute_row(expand("location"), location)))
            upsert_attributes(bound, rows, CREATED, only_newer=False)
            refresh_documents(bound, schema, ids, CREATED)
        yield City(store.engine, schema)
    finally:
        store.close()
        postgres_server.drop_database(name)


def _spheroid_answer(city: City, lon: float, lat: float, distance: float) -> set[str]:
    within = func.ST_DWithin(
        func.geography(attributes.c.geometry),
        func.geography(func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)),
        distance,
    )
    statement = select(attributes.c.entity_id).where(
        attributes.c.name == expand("location"), within
    )
    with city.connect() as connection:
        return set(connection.execute(statement).scalars())


@pytest.mark.parametrize("centre", CENTRES)
@pytest.mark.parametrize("distance", DISTANCES)
def test_near_matches_st_dwithin_on_the_spheroid_at_the_edge(
    edges: City, centre: tuple[float, float], distance: float
) -> None:
    lon, lat = centre
    expected = _spheroid_answer(edges, lon, lat, distance)
    found = edges.ids(
        georel=f"near;maxDistance=={distance}", geometry="Point", coordinates=json.dumps([lon, lat])
    )
    assert found == expected
    # Both sides of the edge are there: the points placed just inside this distance from
    # this centre are found, those placed just outside are not.
    c, d = CENTRES.index(centre), DISTANCES.index(distance)
    for o, offset in enumerate(OFFSETS):
        ring = {f"urn:ngsi-ld:Point:{c}-{d}-{o}-{a}" for a in range(len(AZIMUTHS))}
        if abs(offset) >= 1e-4:
            assert ring <= found if offset < 0 else not ring & found


def test_the_planar_bound_scales_never_undershoot_the_ellipsoid() -> None:
    # Metres per degree: parallel at the equator 111,319.49; meridian at the pole 111,693.97.
    equator_parallel, _ = near_scales(-1.0, 1.0)
    _, polar_meridian = near_scales(80.0, 90.0)
    assert equator_parallel >= 111_319.49
    assert polar_meridian >= 111_693.97
    parallel_40, meridian_40 = near_scales(40.0, 41.0)
    assert 85_000 < parallel_40 < 85_400  # cos 40° · N(40°) · π/180
    assert 111_030 < meridian_40 < 111_060


def test_the_outer_bound_scales_never_exceed_the_ellipsoid() -> None:
    # Metres per degree: meridian at the equator 110,574.27; parallel at 41° 84,137.…
    _, equator_meridian = near_minimum_scales(-1.0, 1.0)
    assert 110_574.0 < equator_meridian <= 110_574.27
    parallel_41, meridian_40 = near_minimum_scales(40.0, 41.0)
    assert 84_000 < parallel_41 < 84_200  # cos 41° · N(41°) · π/180
    assert parallel_41 < near_scales(40.0, 41.0)[0]
    assert 110_900 < meridian_40 < near_scales(40.0, 41.0)[1]
    parallel_pole, _ = near_minimum_scales(80.0, 90.0)
    assert 0.0 <= parallel_pole < 1e-6
