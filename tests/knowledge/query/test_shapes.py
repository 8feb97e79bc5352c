"""Statements compiled once per query shape: same answers as building each query anew."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import literal, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from cityos_knowledge.query import parse_entity_query
from cityos_knowledge.query.nodes import And
from cityos_knowledge.query.paging import count_entities, select_entities
from cityos_knowledge.query.params import EntityQuery
from cityos_knowledge.query.q_parser import parse_q
from cityos_knowledge.query.shapes import (
    StatementCache,
    plan_is_fixed,
    run_pooled_query,
    run_query,
)
from cityos_knowledge.query.targets import Expander
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import entities
from tests.fixtures.services import terminate_backend
from tests.knowledge.query.city import (
    AIR_BARCELONA,
    AIR_ESPANA,
    AIR_SOL,
    LIGHT_SOL,
    SPOT_SOL,
    VOCAB,
    City,
    expand,
)

pytestmark = pytest.mark.postgres


def _page(query: EntityQuery, expand: Expander) -> Any:
    return select_entities(query, expand=expand, columns=[entities.c.id])


def _ids(
    city: City, cache: StatementCache, parameters: dict[str, str], how: Expander = expand
) -> Any:
    query = parse_entity_query({"limit": "100", **parameters})
    with city.connect() as connection:
        return [row[0] for row in run_query(connection, cache, "ids", query, how, _page)]


def test_queries_of_one_shape_share_one_statement_and_keep_their_values(city: City) -> None:
    cache = StatementCache(city.engine.dialect, check=True)
    air = {"type": "AirQualityObserved"}
    assert _ids(city, cache, {**air, "q": "NO2>40"}) == [AIR_BARCELONA, AIR_SOL]
    assert _ids(city, cache, {**air, "q": "NO2>50"}) == [AIR_BARCELONA]
    assert _ids(city, cache, {**air, "q": "NO2>50", "limit": "0", "count": "true"}) == []
    assert len(cache) == 2  # limit is a value, count=true another shape
    near = {"georel": "near;maxDistance==100", "geometry": "Point"}
    assert _ids(city, cache, {**near, "coordinates": "[-3.7038,40.4168]"}) == [
        AIR_SOL,
        SPOT_SOL,
        LIGHT_SOL,
    ]
    assert _ids(city, cache, {**near, "coordinates": "[2.1744,41.4036]"}) == [AIR_BARCELONA]
    ranges = [_ids(city, cache, {"q": f"NO2=={low}..{high}"}) for low, high in ((30, 40), (45, 53))]
    assert ranges == [[AIR_BARCELONA, AIR_ESPANA], [AIR_BARCELONA, AIR_SOL]]
    assert len(cache) == 4


def test_another_context_gets_its_own_statement(city: City) -> None:
    cache = StatementCache(city.engine.dialect, check=True)

    def other_context(term: str) -> str:  # "pollution" means NO2 in this one
        return VOCAB + ("NO2" if term == "pollution" else term)

    assert _ids(city, cache, {"q": "pollution>40"}) == []
    assert _ids(city, cache, {"q": "pollution>40"}, other_context) == [AIR_BARCELONA, AIR_SOL]
    assert _ids(city, cache, {"q": "pollution>50"}) == []


def test_another_context_gets_its_own_prepared_statement(city: City) -> None:
    # The shape's constants (expanded names) are written into the prepared text: the same
    # SQL under another @context must not run the statement prepared for the first one.
    cache = StatementCache(city.engine.dialect, check=True)

    def other_context(term: str) -> str:  # "pollution" means NO2 in this one
        return VOCAB + ("NO2" if term == "pollution" else term)

    near = {"georel": "near;maxDistance==100", "geometry": "Point", "q": "pollution>40"}
    query = parse_entity_query({**near, "coordinates": "[-3.7038,40.4168]"})
    with city.engine.connect() as raw:  # one DBAPI connection for both
        connection = bind_schema(raw, city.schema)
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.commit()
        for how, expected in ((expand, []), (other_context, [AIR_SOL]), (expand, [])):
            rows = run_query(connection, cache, "ids", query, how, _page)
            assert [row[0] for row in rows] == expected
        assert len(_prepared(connection)) == 2
        connection.exec_driver_sql("DEALLOCATE ALL")  # the pool's connection, for later tests
        connection.commit()


def test_a_builder_reading_a_value_directly_is_caught_by_the_check(city: City) -> None:
    cache = StatementCache(city.engine.dialect, check=True)

    def careless(query: EntityQuery, expand: Expander) -> Any:
        return select(entities.c.id).where(entities.c.id > "").limit(literal(query.limit))

    with city.connect() as connection:
        for limit in ("1", "2"):
            query = parse_entity_query({"type": "Park", "limit": limit})
            if limit == "1":
                run_query(connection, cache, "careless", query, expand, careless)
                continue
            with pytest.raises(AssertionError, match="disagrees with the builder"):
                run_query(connection, cache, "careless", query, expand, careless)


def test_statements_whose_text_depends_on_values_are_built_each_time(city: City) -> None:
    cache = StatementCache(city.engine.dialect, check=True)

    def expanding(query: EntityQuery, expand: Expander) -> Any:
        return select(entities.c.id).where(entities.c.id.in_(list(query.ids))).order_by("id")

    with city.connect() as connection:
        for ids in ((AIR_SOL,), (AIR_SOL, SPOT_SOL)):
            query = EntityQuery(ids=ids)
            rows = run_query(connection, cache, "in", query, expand, expanding)
            assert [row[0] for row in rows] == sorted(ids)
    assert cache.sql("in", city.schema, EntityQuery(ids=(AIR_SOL,)), expand, expanding) is None


def test_a_value_node_found_twice_is_built_each_time_until_its_shape_is_known(
    city: City,
) -> None:
    # One Comparison object in two places: the compiler cannot tell which place a parameter
    # belongs to, so such a query is never compiled; once the shape is compiled from a
    # query without sharing, the shared one takes its values by position.
    cache = StatementCache(city.engine.dialect, check=True)
    shared_term = parse_q("NO2>40")
    shared = EntityQuery(q=And((shared_term, shared_term)), limit=100)
    distinct = EntityQuery(q=And((parse_q("NO2>10"), parse_q("NO2>50"))), limit=100)
    with city.connect() as connection:
        rows = run_query(connection, cache, "ids", shared, expand, _page)
        assert [row[0] for row in rows] == [AIR_BARCELONA, AIR_SOL]
        assert len(cache) == 0
        rows = run_query(connection, cache, "ids", distinct, expand, _page)
        assert [row[0] for row in rows] == [AIR_BARCELONA]
        assert len(cache) == 1
        rows = run_query(connection, cache, "ids", shared, expand, _page)
        assert [row[0] for row in rows] == [AIR_BARCELONA, AIR_SOL]


def test_the_count_has_its_own_shape(city: City) -> None:
    cache = StatementCache(city.engine.dialect, check=True)
    with city.connect() as connection:
        for q, expected in (("NO2>40", 2), ("NO2>10", 3)):
            query = parse_entity_query({"q": q})
            build = lambda query, expand: count_entities(query, expand=expand)  # noqa: E731
            assert run_query(connection, cache, "count", query, expand, build)[0][0] == expected


def _prepared(connection: Any) -> list[str]:
    statement = text("SELECT name FROM pg_prepared_statements WHERE name LIKE 'cityos_q_%'")
    return list(connection.execute(statement).scalars())


def test_bounded_near_queries_run_prepared_with_a_generic_plan_in_autocommit(city: City) -> None:
    cache = StatementCache(city.engine.dialect, check=True)
    near = {"georel": "near;maxDistance==100", "geometry": "Point"}
    sol = {**near, "coordinates": "[-3.7038,40.4168]"}
    barcelona = {**near, "coordinates": "[2.1744,41.4036]"}
    with city.engine.connect() as raw:
        connection = bind_schema(raw, city.schema)
        query = parse_entity_query({"limit": "100", **sol})
        assert plan_is_fixed(query)
        assert not plan_is_fixed(parse_entity_query({"q": "NO2>40"}))
        rows = run_query(connection, cache, "ids", query, expand, _page)
        assert [row[0] for row in rows] == [AIR_SOL, SPOT_SOL, LIGHT_SOL]
        [name] = _prepared(connection)
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_generic_plan"
        # Deallocated behind the facade's back: prepared again, same answers.
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.commit()
        query = parse_entity_query({"limit": "100", **barcelona})
        rows = run_query(connection, cache, "ids", query, expand, _page)
        assert [row[0] for row in rows] == [AIR_BARCELONA]
        assert _prepared(connection) == [name]
        connection.commit()
    with city.engine.connect() as raw:
        connection = bind_schema(raw, city.schema)
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.commit()
        with connection.begin():  # in a caller's transaction: never prepared
            rows = run_query(connection, cache, "ids", query, expand, _page)
            assert [row[0] for row in rows] == [AIR_BARCELONA]
            assert _prepared(connection) == []


def test_pooled_queries_run_prepared_and_survive_a_lost_connection(city: City) -> None:
    # run_pooled_query checks a DBAPI connection out of the pool without a SQLAlchemy
    # Connection: prepared statements, the fallback path, and a killed backend must all
    # behave as through run_query (ADR 0065, 0066: the first statement on a connection
    # killed while in use fails, the pool replaces it).
    cache = StatementCache(city.engine.dialect, check=True)
    store = KnowledgeStore.from_url(
        city.engine.url.render_as_string(hide_password=False), pool_size=1
    )
    near = {"georel": "near;maxDistance==100", "geometry": "Point", "limit": "100"}
    sol = parse_entity_query({**near, "coordinates": "[-3.7038,40.4168]"})
    engine, schema = store.engine, city.schema
    try:
        rows = run_pooled_query(engine, schema, cache, "ids", sol, expand, _page)
        assert [row[0] for row in rows] == [AIR_SOL, SPOT_SOL, LIGHT_SOL]
        with engine.connect() as connection:  # the pool's one connection, prepared on
            assert len(_prepared(connection)) == 1
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            connection.commit()
        in_ids = EntityQuery(ids=(AIR_SOL, SPOT_SOL))  # not cacheable: built each time

        def expanding(query: EntityQuery, expand: Expander) -> Any:
            return select(entities.c.id).where(entities.c.id.in_(list(query.ids))).order_by("id")

        rows = run_pooled_query(engine, schema, cache, "in", in_ids, expand, expanding)
        assert [row[0] for row in rows] == [AIR_SOL, SPOT_SOL]
        terminate_backend(city.engine.url.render_as_string(hide_password=False), pid)
        with pytest.raises(DBAPIError) as raised:
            run_pooled_query(engine, schema, cache, "ids", sol, expand, _page)
        assert raised.value.connection_invalidated
        rows = run_pooled_query(engine, schema, cache, "ids", sol, expand, _page)
        assert [row[0] for row in rows] == [AIR_SOL, SPOT_SOL, LIGHT_SOL]
        assert isinstance(engine.pool, QueuePool) and engine.pool.checkedout() == 0
    finally:
        store.close()
