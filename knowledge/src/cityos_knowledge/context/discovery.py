"""Discovery of the entity types and attributes a tenant's live entities have (in SQL).

With a subject's ``DataAccess`` only readable entities count, only readable types are
listed and hidden attributes are left out (conditions added to the same statements).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Subquery, and_, any_, distinct, func, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.query.authorization import DataAccess
from cityos_knowledge.store.tables import LIVE_ENTITY, attributes, entities


@dataclass(frozen=True, slots=True)
class EntityTypeSummary:
    """A type and the attribute names its entities have (``/types?details=true``)."""

    type_name: str
    attribute_names: list[str]


@dataclass(frozen=True, slots=True)
class TypeAttribute:
    """One attribute of a type: its attribute types and how many entities have it."""

    name: str
    attribute_types: list[str]
    count: int


@dataclass(frozen=True, slots=True)
class EntityTypeInfo:
    """``/types/{type}``: how many entities have the type, and their attributes."""

    type_name: str
    entity_count: int
    attribute_details: list[TypeAttribute]


@dataclass(frozen=True, slots=True)
class AttributeSummary:
    """``/attributes`` details: an attribute name, its instances' types and entity types."""

    name: str
    attribute_count: int
    attribute_types: list[str]
    type_names: list[str]


def _typed_entities(access: DataAccess | None) -> Subquery:
    type_name = func.unnest(entities.c.types).label("type_name")
    typed = select(
        entities.c.id.label("entity_id"), entities.c.types.label("entity_types"), type_name
    ).where(LIVE_ENTITY)
    if access is None:
        return typed.subquery()
    readable = typed.where(access.entity_condition()).subquery()
    if access.readable is None:
        return readable
    allowed = literal(sorted(access.readable), ARRAY(TEXT))
    return select(readable).where(readable.c.type_name == any_(allowed)).subquery()


def _visible(access: DataAccess | None, typed: Subquery) -> ColumnElement[bool]:
    if access is None:
        return true()
    return access.attribute_visible(attributes.c.name, typed.c.entity_types)


def entity_types(
    connection: Connection, *, access: DataAccess | None = None
) -> list[EntityTypeSummary]:
    typed = _typed_entities(access)
    names = func.array_remove(func.array_agg(distinct(attributes.c.name)), None)
    joined = and_(attributes.c.entity_id == typed.c.entity_id, _visible(access, typed))
    rows = connection.execute(
        select(typed.c.type_name, names)
        .select_from(typed.outerjoin(attributes, joined))
        .group_by(typed.c.type_name)
        .order_by(typed.c.type_name)
    )
    return [EntityTypeSummary(row[0], sorted(row[1] or [])) for row in rows]


def entity_type(
    connection: Connection, type_name: str, *, access: DataAccess | None = None
) -> EntityTypeInfo | None:
    typed = _typed_entities(access)
    count = connection.execute(
        select(func.count()).select_from(typed).where(typed.c.type_name == type_name)
    ).scalar_one()
    if not count:
        return None
    rows = connection.execute(
        select(
            attributes.c.name,
            func.array_agg(distinct(attributes.c.kind)),
            func.count(distinct(attributes.c.entity_id)),
        )
        .select_from(typed.join(attributes, attributes.c.entity_id == typed.c.entity_id))
        .where(typed.c.type_name == type_name, _visible(access, typed))
        .group_by(attributes.c.name)
        .order_by(attributes.c.name)
    )
    details = [TypeAttribute(row[0], sorted(row[1]), int(row[2])) for row in rows]
    return EntityTypeInfo(type_name, int(count), details)


def attribute_summaries(
    connection: Connection, name: str | None = None, *, access: DataAccess | None = None
) -> list[AttributeSummary]:
    typed = _typed_entities(access)
    statement = (
        select(
            attributes.c.name,
            func.count(distinct(func.row(attributes.c.entity_id, attributes.c.dataset_id))),
            func.array_agg(distinct(attributes.c.kind)),
            func.array_agg(distinct(typed.c.type_name)),
        )
        .select_from(attributes.join(typed, typed.c.entity_id == attributes.c.entity_id))
        .where(_visible(access, typed))
        .group_by(attributes.c.name)
        .order_by(attributes.c.name)
    )
    if name is not None:
        statement = statement.where(attributes.c.name == name)
    return [
        AttributeSummary(row[0], int(row[1]), sorted(row[2]), sorted(row[3]))
        for row in connection.execute(statement)
    ]
