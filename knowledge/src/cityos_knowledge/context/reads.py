"""Context reads: the JSON of entities as SQL, with attrs, pick/omit and sysAttrs applied.

The stored ``entities.entity`` is returned as is when nothing is projected; otherwise the
document is assembled in SQL from the ``attributes`` rows, so projection never loads what
it then throws away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.store.tables import LIVE_ENTITY, attributes, entities

#: Entity members that are not attributes (never expanded, never filtered by ``attrs``).
CORE_MEMBERS = ("id", "type", "scope", "createdAt", "modifiedAt", "deletedAt")

_EMPTY = cast(literal("{}"), JSONB)


@dataclass(frozen=True, slots=True)
class Projection:
    """What of each entity to return.

    ``attrs`` None means every attribute; ``pick``/``omit`` name entity members (core members
    and attribute names, already expanded); ``sys_attrs`` adds createdAt/modifiedAt.
    """

    attrs: Sequence[str] | None = None
    pick: Sequence[str] = ()
    omit: Sequence[str] = ()
    sys_attrs: bool = False

    @property
    def stored_document_suffices(self) -> bool:
        return self.attrs is None and not self.sys_attrs


def iso(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A timestamptz as NGSI-LD's ISO 8601 UTC text with milliseconds."""
    return func.to_char(
        func.timezone("UTC", column), literal('YYYY-MM-DD"T"HH24:MI:SS.MS"Z"', Text)
    )


def _system_members(
    created_at: ColumnElement[Any], modified_at: ColumnElement[Any]
) -> ColumnElement[Any]:
    return func.jsonb_build_object(
        literal("createdAt", Text), iso(created_at), literal("modifiedAt", Text), iso(modified_at)
    )


def _attributes_json(projection: Projection) -> ColumnElement[Any]:
    row = attributes.alias("projected")
    body: ColumnElement[Any] = row.c.body
    if projection.sys_attrs:
        body = body.op("||")(_system_members(row.c.created_at, row.c.modified_at))
    document = case(
        (func.count() == 1, func.jsonb_agg(body).op("->")(0)),
        else_=func.jsonb_agg(aggregate_order_by(body, row.c.dataset_id)),
    )
    grouped = select(row.c.name.label("name"), document.label("document")).where(
        row.c.entity_id == entities.c.id
    )
    if projection.attrs is not None:
        grouped = grouped.where(row.c.name.in_(list(projection.attrs)))
    # A derived table is not correlated by default: without correlate() SQLAlchemy would add
    # ``entities`` to its FROM and aggregate the attributes of every entity.
    per_name = grouped.group_by(row.c.name).correlate(entities).subquery()
    return select(
        func.coalesce(func.jsonb_object_agg(per_name.c.name, per_name.c.document), _EMPTY)
    ).scalar_subquery()


def document_column(projection: Projection) -> ColumnElement[Any]:
    """The JSON of an entity row as the projection wants it."""
    document: ColumnElement[Any]
    if projection.stored_document_suffices:
        document = entities.c.entity
    else:
        head: ColumnElement[Any] = func.jsonb_build_object(
            literal("id", Text),
            entities.c.id,
            literal("type", Text),
            func.to_jsonb(entities.c.types),
        )
        if projection.sys_attrs:
            head = head.op("||")(_system_members(entities.c.created_at, entities.c.modified_at))
        scope = case(
            (entities.c.scopes.is_(None), _EMPTY),
            else_=func.jsonb_build_object(literal("scope", Text), func.to_jsonb(entities.c.scopes)),
        )
        document = head.op("||")(scope).op("||")(_attributes_json(projection))
    if projection.omit:
        document = document.op("-")(literal(list(projection.omit), ARRAY(Text)))
    if projection.pick:
        members = func.jsonb_each(document).table_valued("key", "value").alias("member")
        document = (
            select(func.coalesce(func.jsonb_object_agg(members.c.key, members.c.value), _EMPTY))
            .select_from(members)
            .where(members.c.key.in_(list(projection.pick)))
            .scalar_subquery()
        )
    return document


def retrieve(
    connection: Connection, entity_id: str, projection: Projection
) -> dict[str, Any] | None:
    """One live entity's JSON, or None."""
    return connection.execute(
        select(document_column(projection)).where(entities.c.id == entity_id, LIVE_ENTITY)
    ).scalar_one_or_none()
