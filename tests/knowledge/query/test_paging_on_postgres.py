"""Ordering, paging, counting and projection of context queries on a real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from cityos_knowledge.query import (
    build_entity_filter,
    parse_entity_query,
    prefer_serial_plans,
    select_entities,
)
from cityos_knowledge.store.database import KnowledgeStore
from cityos_knowledge.store.tables import attributes, entities
from tests.knowledge.query.city import (
    AIR_BARCELONA,
    AIR_ESPANA,
    AIR_SOL,
    LIGHT_RETIRO,
    LIGHT_SOL,
    PARK_RETIRO,
    SPOT_ATOCHA,
    SPOT_SOL,
    VOCAB,
    City,
    expand,
)

pytestmark = pytest.mark.postgres

AIR = {"type": "AirQualityObserved"}


def test_default_order_is_by_id_and_pages_do_not_overlap(city: City) -> None:
    everything = city.query({"idPattern": ".*"})
    assert everything == sorted(everything)
    pages = [
        city.query({"idPattern": ".*", "limit": "3", "offset": str(offset)}) for offset in (0, 3, 6)
    ]
    assert [len(page) for page in pages] == [3, 3, 2]
    assert [entity for page in pages for entity in page] == everything


def test_count_ignores_paging(city: City) -> None:
    assert city.count(type="AirQualityObserved", q="NO2>30", limit="1") == 3
    assert city.count(type="Streetlight", limit="0", count="true") == 2
    assert city.count(q="noSuchAttribute") == 0


def test_the_total_can_come_with_the_page(city: City) -> None:
    query = parse_entity_query({"type": "AirQualityObserved", "limit": "2", "offset": "1"})
    with city.connect() as connection:
        rows = connection.execute(select_entities(query, expand=expand, with_total=True)).all()
    assert [(row.id, row.total) for row in rows] == [(AIR_ESPANA, 3), (AIR_SOL, 3)]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("NO2", [AIR_ESPANA, AIR_SOL, AIR_BARCELONA]),
        ("NO2;asc", [AIR_ESPANA, AIR_SOL, AIR_BARCELONA]),
        ("NO2;desc", [AIR_BARCELONA, AIR_SOL, AIR_ESPANA]),
        ("NO2.observedAt;desc", [AIR_ESPANA, AIR_BARCELONA, AIR_SOL]),
        ("airQualityLevel", [AIR_ESPANA, AIR_SOL, AIR_BARCELONA]),
        ("address[addressLocality];desc,id;desc", [AIR_SOL, AIR_ESPANA, AIR_BARCELONA]),
        ("createdAt;desc", [AIR_BARCELONA, AIR_ESPANA, AIR_SOL]),
        ("id;desc", [AIR_SOL, AIR_ESPANA, AIR_BARCELONA]),
        # numbers before strings, absent last (Barcelona's temperature is "n/a")
        ("temperature", [AIR_ESPANA, AIR_SOL, AIR_BARCELONA]),
        ("reliable", [AIR_ESPANA, AIR_SOL, AIR_BARCELONA]),
        ("location;dist-asc", [AIR_SOL, AIR_ESPANA, AIR_BARCELONA]),
        ("location;dist-desc", [AIR_BARCELONA, AIR_ESPANA, AIR_SOL]),
    ],
)
def test_order_by(city: City, order_by: str, expected: list[str]) -> None:
    parameters = {**AIR, "orderBy": order_by}
    if "dist" in order_by:
        parameters["orderFrom"] = "[-3.7038,40.4168]"
    assert city.query(parameters) == expected


def test_order_by_entities_lacking_the_attribute_go_last(city: City) -> None:
    ordered = city.query({"type": "Streetlight,ParkingSpot,Park", "orderBy": "lanternHeight;desc"})
    assert ordered[:2] == [LIGHT_RETIRO, LIGHT_SOL]
    assert set(ordered[2:]) == {SPOT_SOL, SPOT_ATOCHA, PARK_RETIRO}
    assert ordered[2:] == sorted(ordered[2:])


def test_projection_in_sql(city: City) -> None:
    full = city.documents(id=AIR_SOL)[AIR_SOL]
    assert {"id", "type", "scope", VOCAB + "NO2", VOCAB + "location"} <= set(full)
    picked = city.documents(id=AIR_SOL, pick="id,NO2")[AIR_SOL]
    assert picked == {"id": AIR_SOL, VOCAB + "NO2": full[VOCAB + "NO2"]}
    omitted = city.documents(id=AIR_SOL, omit="NO2,scope")[AIR_SOL]
    assert set(full) - set(omitted) == {VOCAB + "NO2", "scope"}
    attrs = city.documents(id=f"{AIR_SOL},{SPOT_SOL}", attrs="NO2")
    assert set(attrs) == {AIR_SOL}  # attrs also selects entities having one of them
    assert set(attrs[AIR_SOL]) == {"id", "type", "scope", VOCAB + "NO2"}
    assert city.documents(id=AIR_SOL, pick="noSuchAttribute")[AIR_SOL] == {}


def test_the_filter_keeps_its_meaning_in_a_statement_that_reads_attributes(city: City) -> None:
    """The facade may join attribute rows (e.g. to list or purge them) under the filter."""
    query = parse_entity_query(
        {
            "type": "AirQualityObserved",
            "q": "NO2>40;temperature>20",
            "georel": "near;maxDistance==1000",
            "geometry": "Point",
            "coordinates": "[-3.7038,40.4168]",
        }
    )
    statement = (
        select(attributes.c.entity_id, attributes.c.name)
        .join(entities, entities.c.id == attributes.c.entity_id)
        .where(build_entity_filter(query, expand=expand), attributes.c.name == expand("reliable"))
    )
    with city.connect() as connection:
        rows = connection.execute(statement).all()
    assert [(row.entity_id, row.name) for row in rows] == [(AIR_SOL, VOCAB + "reliable")]


def test_store_connections_plan_serially(city: City) -> None:
    show = text("SHOW max_parallel_workers_per_gather")
    store = KnowledgeStore.from_url(city.engine.url.render_as_string(hide_password=False))
    try:
        with store.engine.connect() as connection:
            assert connection.execute(show).scalar_one() == "0"
            connection.commit()
            with connection.begin():
                connection.execute(text("SET LOCAL max_parallel_workers_per_gather TO DEFAULT"))
                assert connection.execute(show).scalar_one() != "0"
            assert connection.execute(show).scalar_one() == "0"
    finally:
        store.close()


def test_prefer_serial_plans_lasts_for_the_transaction_only(city: City) -> None:
    show = text("SHOW max_parallel_workers_per_gather")
    with city.engine.connect() as connection:
        connection.exec_driver_sql("SET max_parallel_workers_per_gather = 2")
        connection.commit()
        with connection.begin():
            prefer_serial_plans(connection)
            assert connection.execute(show).scalar_one() == "0"
        assert connection.execute(show).scalar_one() == "2"
