"""Ordering, paging, counting and projecting a context query — statements ready to execute.

Ordering (``orderBy``, §4.23): by ``id``, ``type``, ``createdAt``, ``modifiedAt`` or any
attribute path; values of mixed types sort numbers first, then strings, then other values,
and entities without the attribute last (``desc`` reverses the values, not the "absent
last" rule); ``dist-asc``/``dist-desc`` sort by the spheroidal distance of the GeoProperty
from ``orderFrom``. The entity id always ends the ordering, so pages are stable.

Projection (``attrs``, ``pick``, ``omit``) is done in SQL on the stored entity document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, Integer, Select, Text, any_, case, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.query.params import EntityQuery
from cityos_knowledge.query.selection import build_entity_filter, unexpanded
from cityos_knowledge.query.selectors import OrderTerm
from cityos_knowledge.query.shapes import bound
from cityos_knowledge.query.targets import Expander, resolve
from cityos_knowledge.store.tables import DEFAULT_DATASET, attributes, entities

#: Entity members that are not attributes (never expanded as attribute names).
ENTITY_MEMBERS = frozenset({"id", "type", "scope"})

_ENTITY_COLUMNS = {
    "id": entities.c.id,
    "type": entities.c.types,
    "createdAt": entities.c.created_at,
    "modifiedAt": entities.c.modified_at,
}


def select_entities(
    query: EntityQuery,
    *,
    expand: Expander = unexpanded,
    columns: Sequence[Any] | None = None,
    with_total: bool = False,
) -> Select[Any]:
    """One page of matching entities: filter, order, ``limit`` and ``offset``.

    ``columns`` default to the entity id and its projected document (``attrs``/``pick``/
    ``omit`` applied), labelled ``id`` and ``entity``. ``with_total`` adds a ``total``
    column: the number of matching entities before paging, computed by the same execution
    (for ``count=true`` without a second query; when the page is empty because ``offset``
    is past the end, there is no row to carry it and :func:`count_entities` is needed).
    """
    selected = (
        list(columns)
        if columns is not None
        else [entities.c.id, entity_document(query, expand=expand).label("entity")]
    )
    if with_total:
        selected.append(func.count().over().label("total"))
    return (
        select(*selected)
        .where(build_entity_filter(query, expand=expand))
        .order_by(*entity_ordering(query, expand=expand))
        .limit(bound(query, int, Integer(), field="limit"))
        .offset(bound(query, int, Integer(), field="offset"))
    )


def count_entities(query: EntityQuery, *, expand: Expander = unexpanded) -> Select[Any]:
    """The number of entities ``query`` matches (for ``count=true``)."""
    return (
        select(func.count()).select_from(entities).where(build_entity_filter(query, expand=expand))
    )


def entity_ordering(query: EntityQuery, *, expand: Expander = unexpanded) -> list[Any]:
    """ORDER BY items for ``query``, ending with the entity id."""
    items: list[Any] = []
    for term in query.order_by:
        items.extend(_order_items(term, query, expand))
    items.append(entities.c.id)
    return items


def _order_items(term: OrderTerm, query: EntityQuery, expand: Expander) -> list[Any]:
    path = term.path
    descending = term.direction.descending
    if term.direction.by_distance:
        assert query.order_from is not None  # checked when the parameters were parsed
        distance = _first(
            path,
            expand,
            lambda target: func.ST_Distance(
                func.geography(attributes.c.geometry),
                func.geography(
                    func.ST_SetSRID(
                        func.ST_MakePoint(
                            bound(query, _longitude, Float(), field="order_from"),
                            bound(query, _latitude, Float(), field="order_from"),
                        ),
                        4326,
                    )
                ),
            ),
        )
        return [distance.desc().nulls_last() if descending else distance.asc().nulls_last()]
    column = _ENTITY_COLUMNS.get(path.attribute)
    if column is not None and not path.sub_attributes and not path.members:
        return [column.desc() if descending else column.asc()]
    number = _first(path, expand, lambda target: target.as_number())
    text = _first(path, expand, lambda target: target.as_text())
    present = _first(path, expand, lambda target: literal(1))
    first_kind, second_kind = (number, text) if not descending else (text, number)
    rank = case(
        (first_kind.is_not(None), 0),
        (second_kind.is_not(None), 1),
        (present.is_not(None), 2),
        else_=3,
    )
    if descending:
        return [rank, number.desc(), text.desc()]
    return [rank, number.asc(), text.asc()]


def _longitude(point: tuple[float, float]) -> float:
    return point[0]


def _latitude(point: tuple[float, float]) -> float:
    return point[1]


def _first(path: Any, expand: Expander, value: Any) -> ColumnElement[Any]:
    """``value(target)`` on the entity's attribute (its default instance first)."""
    selects, target = resolve(path, expand)
    return (
        select(value(target))
        .select_from(attributes)
        .where(attributes.c.entity_id == entities.c.id, selects, target.present)
        .order_by(attributes.c.dataset_id != DEFAULT_DATASET, attributes.c.dataset_id)
        .limit(1)
        .correlate(entities)
        .scalar_subquery()
    )


def entity_document(query: EntityQuery, *, expand: Expander = unexpanded) -> ColumnElement[Any]:
    """The stored entity document with ``attrs``, ``pick`` or ``omit`` applied."""
    document = entities.c.entity
    if query.omit:
        return document.op("-")(_members(query.omit, expand))
    kept: list[str] = []
    if query.pick:
        kept = list(query.pick)
    elif query.attrs:
        kept = ["id", "type", "scope", *query.attrs]
    else:
        return document
    entry = func.jsonb_each(document).table_valued("key", "value").alias()
    return (
        select(func.coalesce(func.jsonb_object_agg(entry.c.key, entry.c.value), literal({}, JSONB)))
        .select_from(entry)
        .where(entry.c.key == any_(_members(tuple(kept), expand)))
        .scalar_subquery()
    )


def _members(names: Sequence[str], expand: Expander) -> ColumnElement[Any]:
    expanded = [name if name in ENTITY_MEMBERS else expand(name) for name in names]
    return literal(expanded, ARRAY(Text))
