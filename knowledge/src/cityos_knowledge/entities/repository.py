"""SQL over one tenant's tables, shared by the ingest and the service facade.

Every function takes a connection already bound to the tenant's schema
(:func:`cityos_knowledge.store.database.bind_schema`) and inside the caller's transaction:
the entry point (consumer loop, facade operation) owns the transaction. Writes are set-based
(multi-row statements, COPY), never one statement per row.

Locking rule: a write transaction locks the rows of the entities it touches
(:func:`lock_entities`, in id order, so two writers never deadlock) before changing their
attributes, so :func:`refresh_documents` always sees every committed attribute.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg2.errors
from sqlalchemy import (
    Connection,
    Float,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, insert
from sqlalchemy.sql.elements import ColumnClause

from cityos_knowledge.entities.attributes import AttributeRow, InstanceRow
from cityos_knowledge.store.tables import attributes, entities


@dataclass(frozen=True, slots=True)
class EntityState:
    """What a writer needs to know about an existing entity row."""

    id: str
    types: list[str]
    scopes: list[str] | None
    deleted: bool
    created_at: datetime
    document: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EntityDocument:
    """An entity after a write: its types and its whole expanded JSON."""

    id: str
    types: list[str]
    entity: dict[str, Any]
    created_at: datetime
    modified_at: datetime


def lock_entities(
    connection: Connection, ids: Iterable[str], *, with_documents: bool = False
) -> dict[str, EntityState]:
    """Lock the existing rows among ``ids`` (FOR UPDATE, in id order) and describe them."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    columns = [
        entities.c.id,
        entities.c.types,
        entities.c.scopes,
        entities.c.deleted_at,
        entities.c.created_at,
    ]
    if with_documents:
        columns.append(entities.c.entity)
    rows = connection.execute(
        select(*columns).where(entities.c.id.in_(wanted)).order_by(entities.c.id).with_for_update()
    )
    return {
        row.id: EntityState(
            row.id,
            list(row.types),
            row.scopes,
            row.deleted_at is not None,
            row.created_at,
            row.entity if with_documents else None,
        )
        for row in rows
    }


def recordset(rows: Sequence[Mapping[str, Any]], columns: Sequence[ColumnClause[Any]]) -> Any:
    """Rows passed as ONE bound JSON parameter and read back with ``jsonb_to_recordset``.

    Multi-row VALUES built by SQLAlchemy cost more to compile than to run (a batch of a few
    thousand rows took seconds); one JSON parameter keeps the statement constant, so it is
    compiled once and cached. Keys whose value is None are dropped (absent means NULL).
    """
    document = orjson.dumps(
        [{key: value for key, value in row.items() if value is not None} for row in rows]
    ).decode()
    return (
        func.jsonb_to_recordset(cast(literal(document, Text), JSONB))
        .table_valued(*columns)
        .render_derived(name="given", with_types=True)
    )


def insert_new_entities(
    connection: Connection, new: Sequence[tuple[str, list[str], list[str] | None]], now: datetime
) -> set[str]:
    """Insert (id, types, scopes) rows that do not exist; return the ids actually inserted."""
    if not new:
        return set()
    given = recordset(
        [
            {"id": entity_id, "types": types, "scopes": scopes}
            for entity_id, types, scopes in sorted(new)
        ],
        [column("id", Text), column("types", ARRAY(Text)), column("scopes", ARRAY(Text))],
    )
    document = func.jsonb_build_object(
        literal("id", Text), given.c.id, literal("type", Text), func.to_jsonb(given.c.types)
    )
    statement = (
        insert(entities)
        .from_select(
            ["id", "types", "scopes", "created_at", "modified_at", "entity"],
            select(
                given.c.id,
                given.c.types,
                given.c.scopes,
                literal(now, TIMESTAMP(timezone=True)),
                literal(now, TIMESTAMP(timezone=True)),
                document,
            ),
        )
        .on_conflict_do_nothing(index_elements=[entities.c.id])
        .returning(entities.c.id)
    )
    return set(connection.execute(statement).scalars())


def revive_entities(
    connection: Connection,
    revived: Sequence[tuple[str, list[str], list[str] | None]],
    now: datetime,
) -> None:
    """Give deleted entities a new life: new types and scopes, new createdAt, no deletedAt."""
    if not revived:
        return
    connection.execute(
        entities.update()
        .where(entities.c.id == bindparam("b_id"))
        .values(
            types=bindparam("b_types"),
            scopes=bindparam("b_scopes"),
            created_at=now,
            modified_at=now,
            deleted_at=None,
        ),
        [{"b_id": i, "b_types": t, "b_scopes": s} for i, t, s in revived],
    )


def set_types(connection: Connection, changes: Sequence[tuple[str, list[str]]]) -> None:
    """Replace the types of existing entities."""
    if not changes:
        return
    connection.execute(
        entities.update()
        .where(entities.c.id == bindparam("b_id"))
        .values(types=bindparam("b_types")),
        [{"b_id": entity_id, "b_types": types} for entity_id, types in changes],
    )


def upsert_attributes(
    connection: Connection,
    rows: Sequence[tuple[str, AttributeRow]],
    now: datetime,
    *,
    only_newer: bool,
    keep_existing: bool = False,
    same_instant: bool = False,
) -> list[tuple[str, str, str]]:
    """Insert or overwrite current-state rows; return the (entity, name, dataset) written.

    ``rows`` must hold each key once. With ``only_newer`` an existing row is overwritten only
    by a strictly later observedAt (the ingest: a replayed or late observation never rolls
    the current state back); ``same_instant`` lets an equal observedAt overwrite too (a
    temporal API client correcting an instant). With ``keep_existing`` existing rows are
    left alone (``noOverwrite``).
    """
    if not rows:
        return []
    given = recordset(
        [{"entity_id": entity_id, **row.columns()} for entity_id, row in rows],
        _ATTRIBUTE_RECORD,
    )
    moment = literal(now, TIMESTAMP(timezone=True))
    statement = insert(attributes).from_select(
        [
            "entity_id", "name", "dataset_id", "kind", "value", "value_number", "value_text",
            "geometry", "observed_at", "unit_code", "body", "created_at", "modified_at",
        ],
        select(
            given.c.entity_id, given.c.name, given.c.dataset_id, given.c.kind, given.c.value,
            given.c.value_number, given.c.value_text,
            func.ST_SetSRID(func.ST_GeomFromGeoJSON(given.c.geometry), 4326),
            given.c.observed_at, given.c.unit_code, given.c.body, moment, moment,
        ),
    )  # fmt: skip
    key = [attributes.c.entity_id, attributes.c.name, attributes.c.dataset_id]
    if keep_existing:
        upsert = statement.on_conflict_do_nothing(index_elements=key)
    else:
        excluded = statement.excluded
        condition = None
        if only_newer:
            later = (
                excluded.observed_at >= attributes.c.observed_at
                if same_instant
                else excluded.observed_at > attributes.c.observed_at
            )
            condition = attributes.c.observed_at.is_(None) | later
        upsert = statement.on_conflict_do_update(
            index_elements=key,
            set_={
                "kind": excluded.kind,
                "value": excluded.value,
                "value_number": excluded.value_number,
                "value_text": excluded.value_text,
                "geometry": literal_column("excluded.geometry"),
                "observed_at": excluded.observed_at,
                "unit_code": excluded.unit_code,
                "body": excluded.body,
                "modified_at": excluded.modified_at,
            },
            where=condition,
        )
    result = connection.execute(
        upsert.returning(attributes.c.entity_id, attributes.c.name, attributes.c.dataset_id)
    )
    return [(row.entity_id, row.name, row.dataset_id) for row in result]


def delete_attributes(
    connection: Connection,
    entity_id: str,
    name: str | None = None,
    dataset_id: str | None = None,
) -> int:
    """Delete current-state rows of an entity (all, one attribute, or one instance of it)."""
    condition = attributes.c.entity_id == entity_id
    if name is not None:
        condition = and_(condition, attributes.c.name == name)
    if dataset_id is not None:
        condition = and_(condition, attributes.c.dataset_id == dataset_id)
    return connection.execute(attributes.delete().where(condition)).rowcount


def existing_attribute_keys(connection: Connection, entity_id: str) -> set[tuple[str, str]]:
    """The (name, datasetId) pairs an entity has now."""
    rows = connection.execute(
        select(attributes.c.name, attributes.c.dataset_id).where(
            attributes.c.entity_id == entity_id
        )
    )
    return {(row.name, row.dataset_id) for row in rows}


#: The columns of the attribute rows handed to :func:`upsert_attributes` as JSON.
_ATTRIBUTE_RECORD = [
    column("entity_id", Text),
    column("name", Text),
    column("dataset_id", Text),
    column("kind", Text),
    column("value", JSONB),
    column("value_number", Float(precision=53)),
    column("value_text", Text),
    column("geometry", Text),
    column("observed_at", TIMESTAMP(timezone=True)),
    column("unit_code", Text),
    column("body", JSONB),
]

#: An entity's document built from its attribute rows (ADR 0014), as the value of
#: ``entity`` in an UPDATE of ``entities AS e``; ``{attributes}`` names where the rows come
#: from (the table, or a CTE with entity_id, name, dataset_id and body). A format template.
DOCUMENT_EXPRESSION = """jsonb_build_object('id', e.id, 'type', to_jsonb(e.types))
    || CASE WHEN e.scopes IS NULL THEN '{{}}'::jsonb
            ELSE jsonb_build_object('scope', to_jsonb(e.scopes)) END
    || coalesce((
      SELECT jsonb_object_agg(grouped.name, grouped.document)
      FROM (
        SELECT a.name,
               CASE WHEN count(*) = 1 THEN (array_agg(a.body))[1]
                    ELSE jsonb_agg(a.body ORDER BY a.dataset_id) END AS document
        FROM {attributes} AS a WHERE a.entity_id = e.id GROUP BY a.name
      ) AS grouped
    ), '{{}}'::jsonb)"""

_DOCUMENT_SQL = f"""
UPDATE {{entities}} AS e SET
  entity = {DOCUMENT_EXPRESSION},
  modified_at = :now
WHERE e.id = ANY(:ids)
RETURNING e.id, e.types, e.entity, e.created_at, e.modified_at
"""  # noqa: S608 (a constant template)


def document_update_sql(connection: Connection, schema: str) -> str:
    """The UPDATE that rebuilds the documents of entities ``:ids`` (binds ``:now``, ``:ids``)."""
    quote = connection.dialect.identifier_preparer.quote
    return _DOCUMENT_SQL.format(
        entities=f"{quote(schema)}.entities", attributes=f"{quote(schema)}.attributes"
    )


def refresh_documents(
    connection: Connection, schema: str, ids: Iterable[str], now: datetime
) -> dict[str, EntityDocument]:
    """Rebuild the ``entity`` JSON of entities from their attribute rows; set modifiedAt."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = connection.execute(
        text(document_update_sql(connection, schema)), {"now": now, "ids": wanted}
    )
    return {
        row.id: EntityDocument(row.id, list(row.types), row.entity, row.created_at, row.modified_at)
        for row in rows
    }


#: Columns of the staging table, in COPY order.
_STAGING_COLUMNS = (
    "entity_id",
    "name",
    "dataset_id",
    "observed_at",
    "has_observed_at",
    "kind",
    "unit_code",
    "value_number",
    "value",
    "geometry",
    "extras",
)

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS knowledge_instances_in (
  entity_id text, name text, dataset_id text, observed_at timestamptz,
  has_observed_at boolean, kind text, unit_code text, value_number double precision,
  value jsonb, geometry text, extras jsonb
) ON COMMIT DELETE ROWS
"""

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _copy_text(text: str) -> str:
    return text.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def copy_lines(
    connection: Connection, table: str, columns: Sequence[str], lines: Iterable[str]
) -> None:
    """COPY text lines (tab-separated, newline-terminated) into ``table``."""
    buffer = io.StringIO("".join(lines))
    dbapi_connection: Any = connection.connection.dbapi_connection
    with dbapi_connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)


#: The history columns COPied directly (rows without geometry).
_DIRECT_COLUMNS = tuple(name for name in _STAGING_COLUMNS if name != "geometry")

_NULL = "\\N"


def _instance_line(row: InstanceRow, *, geometry: bool) -> str:
    """One history row as a COPY line: the hot path of the ingest, hence spelled out."""
    number = row.value_number
    fields = [
        _copy_text(row.entity_id),
        _copy_text(row.name),
        _copy_text(row.dataset_id),
        row.observed_at.isoformat(),
        "t" if row.has_observed_at else "f",
        row.kind,
        _NULL if row.unit_code is None else _copy_text(row.unit_code),
        _NULL if number is None else repr(number),
        _NULL if row.value is None else _copy_text(orjson.dumps(row.value).decode()),
    ]
    if geometry:
        fields.append(_NULL if row.geometry is None else _copy_text(row.geometry))
    fields.append(_NULL if row.extras is None else _copy_text(orjson.dumps(row.extras).decode()))
    return "\t".join(fields) + "\n"


def append_instances(connection: Connection, schema: str, instances: Sequence[InstanceRow]) -> int:
    """Append history rows, ignoring those already stored (same entity, attribute, dataset
    and observedAt); return how many were new.

    First try: one COPY straight into the history table, in a savepoint — what a batch of
    new observations costs in the common case. If any row is already there (a replayed
    batch) the savepoint is rolled back and the rows go through a session-local staging
    table and one ``INSERT … SELECT … ON CONFLICT DO NOTHING``, which makes a replay a
    no-op. Rows with a geometry (GeoJSON that PostGIS must parse) always take that path.
    """
    if not instances:
        return 0
    plain = [row for row in instances if row.geometry is None]
    located = [row for row in instances if row.geometry is not None]
    quoted = connection.dialect.identifier_preparer.quote(schema)
    written = 0
    if plain:
        savepoint = connection.begin_nested()
        try:
            copy_lines(
                connection,
                f"{quoted}.attribute_instances",
                _DIRECT_COLUMNS,
                (_instance_line(row, geometry=False) for row in plain),
            )
        except psycopg2.errors.UniqueViolation:
            savepoint.rollback()
            located = list(instances)
        else:
            savepoint.commit()
            written = len(plain)
    if not located:
        return written
    connection.execute(text(_STAGING_DDL))
    copy_lines(
        connection,
        "knowledge_instances_in",
        _STAGING_COLUMNS,
        (_instance_line(row, geometry=True) for row in located),
    )
    columns = ", ".join(_STAGING_COLUMNS)
    moved = connection.execute(
        text(
            f"INSERT INTO {quoted}.attribute_instances ({columns}) "  # noqa: S608
            f"SELECT {', '.join(_STAGING_COLUMNS[:-2])}, "
            "ST_SetSRID(ST_GeomFromGeoJSON(geometry), 4326), extras "
            "FROM knowledge_instances_in ON CONFLICT DO NOTHING"
        )
    )
    connection.execute(text("TRUNCATE knowledge_instances_in"))
    return written + moved.rowcount
