"""Temporal reads: attribute instances in a time window, as NGSI-LD temporal representations.

Three shapes (ETSI GS CIM 009 §4.5.7-4.5.19), all for expanded names:

- normalized: ``{"id", "type", <attr>: [instance, …]}``;
- temporalValues: ``<attr>: {"type", "values": [[value, time], …]}`` (``objects`` for a
  Relationship, ``languageMaps``, ``vocabs``, ``jsons``, ``valueLists``, ``objectLists``);
- aggregatedValues: see :mod:`cityos_knowledge.temporal.aggregation`.

Attributes with several datasetIds give a list of such objects, one per datasetId.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.entities.attributes import DELETED_AT, format_datetime, render_instance
from cityos_knowledge.store.tables import DEFAULT_DATASET, attribute_instances, entities
from cityos_knowledge.temporal.params import TemporalQuery

history = attribute_instances

#: The member holding the values of a temporalValues attribute, by attribute type.
VALUES_MEMBER = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "VocabProperty": "vocabs",
    "JsonProperty": "jsons",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
}

AttributeKey = tuple[str, str, str]  # entity id, attribute name, datasetId


def time_column(timeproperty: str) -> ColumnElement[Any]:
    if timeproperty == "createdAt":
        return history.c.created_at
    if timeproperty == "modifiedAt":
        return func.coalesce(history.c.modified_at, history.c.created_at)
    # observedAt; a recorded deletion (deletedAt) keeps its deletion time there, unobserved.
    return history.c.observed_at


def window(query: TemporalQuery) -> list[ColumnElement[bool]]:
    """The time filter of a request as clauses over ``attribute_instances``.

    Recorded deletions (4.5.7) are what ``timeproperty=deletedAt`` reads, and only that.
    """
    column = time_column(query.timeproperty)
    deletion = history.c.extras.has_key(DELETED_AT)
    clauses: list[ColumnElement[bool]] = [
        deletion
        if query.timeproperty == "deletedAt"
        else or_(history.c.extras.is_(None), ~deletion)
    ]
    if query.timerel == "before":
        clauses.append(column < query.time_at)
    elif query.timerel == "after":
        clauses.append(column >= query.time_at)
    elif query.timerel == "between":
        clauses.extend([column >= query.time_at, column < query.end_time_at])
    return clauses


def selection(ids: Sequence[str], names: Sequence[str] | None) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [history.c.entity_id.in_(list(ids))]
    if names is not None:
        clauses.append(history.c.name.in_(list(names)))
    return clauses


def entity_types(connection: Connection, ids: Sequence[str]) -> dict[str, list[str]]:
    """The types of entities that exist or once existed (a deleted entity keeps its row)."""
    rows = connection.execute(
        select(entities.c.id, entities.c.types).where(entities.c.id.in_(list(ids)))
    )
    return {row.id: list(row.types) for row in rows}


def load_instances(
    connection: Connection,
    ids: Sequence[str],
    names: Sequence[str] | None,
    query: TemporalQuery,
) -> list[Any]:
    """Instance rows in the window, oldest first per attribute instance: the last N with
    ``lastN``, and no more than ``instance_limit`` of them (the first, or with ``lastN`` the
    newest) when that is set."""
    at = time_column(query.timeproperty).label("at")
    columns = [*history.c, at]
    conditions = [*selection(ids, names), *window(query)]
    newest = query.last_n is not None
    limits = [n for n in (query.last_n, query.instance_limit) if n is not None]
    if not limits:
        statement = (
            select(*columns)
            .where(*conditions)
            .order_by(history.c.entity_id, history.c.name, history.c.dataset_id, at)
        )
        return list(connection.execute(statement))
    rank = (
        func.row_number()
        .over(
            partition_by=(history.c.entity_id, history.c.name, history.c.dataset_id),
            order_by=at.desc() if newest else at,
        )
        .label("rank")
    )
    ranked = select(*columns, rank).where(*conditions).subquery()
    statement = (
        select(*(ranked.c[c.name] for c in history.c), ranked.c.at)
        .where(ranked.c.rank <= min(limits))
        .order_by(ranked.c.entity_id, ranked.c.name, ranked.c.dataset_id, ranked.c.at)
    )
    return list(connection.execute(statement))


def render_row(row: Any, *, sys_attrs: bool = False) -> dict[str, Any]:
    """An ``attribute_instances`` row as an NGSI-LD attribute instance."""
    return render_instance(
        kind=row.kind,
        value_number=row.value_number,
        value=row.value,
        unit_code=row.unit_code,
        observed_at=row.observed_at,
        has_observed_at=row.has_observed_at,
        dataset_id=row.dataset_id,
        extras=row.extras,
        instance_id=row.instance_id,
        created_at=row.created_at if sys_attrs else None,
        modified_at=row.modified_at if sys_attrs else None,
    )


def normalized(rows: Sequence[Any], *, sys_attrs: bool) -> dict[str, dict[str, Any]]:
    """entity id → attribute name → list of instances."""
    found: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        found[row.entity_id].setdefault(row.name, []).append(render_row(row, sys_attrs=sys_attrs))
    return found


def temporal_values(rows: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """entity id → attribute name → temporalValues object (or list, one per datasetId)."""
    per_key: dict[AttributeKey, dict[str, Any]] = {}
    for row in rows:
        key = (row.entity_id, row.name, row.dataset_id)
        member = VALUES_MEMBER[row.kind]
        target = per_key.get(key)
        if target is None:
            target = per_key[key] = {"type": row.kind, member: []}
            if row.dataset_id != DEFAULT_DATASET:
                target["datasetId"] = row.dataset_id
        value = row.value if row.value_number is None else plain(row.value_number)
        target.setdefault(member, []).append([value, format_datetime(row.at)])
    return fold(per_key)


def fold(per_key: dict[AttributeKey, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for (entity_id, name, _dataset), item in per_key.items():
        grouped[entity_id][name].append(item)
    return {
        entity_id: {name: items[0] if len(items) == 1 else items for name, items in attrs.items()}
        for entity_id, attrs in grouped.items()
    }


def plain(number: float) -> int | float:
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
