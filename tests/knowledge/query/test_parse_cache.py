"""Parsed expressions kept by text: shared, immutable, and answered with their own values."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cityos_knowledge.query import InvalidQueryError, parse_entity_query
from cityos_knowledge.query.paging import select_entities
from cityos_knowledge.query.params import MAX_CACHED_TEXT, EntityQuery
from cityos_knowledge.query.shapes import StatementCache, run_query
from cityos_knowledge.query.targets import Expander
from cityos_knowledge.store.tables import entities
from tests.knowledge.query.city import AIR_BARCELONA, AIR_SOL, City, expand


def test_the_same_text_gives_one_shared_immutable_tree() -> None:
    first = parse_entity_query({"type": "AirQualityObserved", "q": "NO2>40;temperature<30"})
    second = parse_entity_query({"type": "AirQualityObserved", "q": "NO2>40;temperature<30"})

    assert second.q is first.q and second.types is first.types
    with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):  # slots: TypeError
        first.q.operator = None  # type: ignore[union-attr,misc]


def test_a_long_text_is_parsed_anew_each_time() -> None:
    text = ";".join(f"a{index}>1" for index in range(MAX_CACHED_TEXT // 4))
    assert len(text) > MAX_CACHED_TEXT

    assert parse_entity_query({"q": text}).q is not parse_entity_query({"q": text}).q


def test_a_malformed_text_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidQueryError, match="q"):
            parse_entity_query({"q": "NO2>>40"})


def _page(query: EntityQuery, expand: Expander) -> Any:
    return select_entities(query, expand=expand, columns=[entities.c.id])


@pytest.mark.postgres
def test_repeated_texts_keep_their_own_values_in_one_cached_shape(city: City) -> None:
    cache = StatementCache(city.engine.dialect, check=True)  # checks every query built anew

    def ids(q: str) -> list[str]:
        query = parse_entity_query({"type": "AirQualityObserved", "q": q, "limit": "100"})
        with city.connect() as connection:
            return [row[0] for row in run_query(connection, cache, "ids", query, expand, _page)]

    answers = [ids(q) for q in ("NO2>40", "NO2>50", "NO2>40", "NO2>50", "NO2>40")]

    assert answers == [[AIR_BARCELONA, AIR_SOL], [AIR_BARCELONA]] * 2 + [[AIR_BARCELONA, AIR_SOL]]
    assert len(cache) == 1
