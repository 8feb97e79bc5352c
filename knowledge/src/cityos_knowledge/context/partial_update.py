"""The partial update of one attribute (PATCH /entities/{id}/attrs/{attrId}) in two statements.

The general write path (:class:`cityos_knowledge.context.writes.ContextWriter`) runs about
nine statements for this operation and builds most of them with SQLAlchemy Core each time;
the statements' construction cost more than running them. This is the hot write of the
NGSI-LD API (a device or an application updating one value), so it has its own path with
the same effects and guarantees, written as SQL text cached per tenant schema:

1. lock the entity row (``FOR UPDATE``) and read its types and the attribute instance;
2. (Python) merge the partial attribute into the stored one and validate it exactly as the
   general path does (:func:`cityos_knowledge.entities.attributes.attribute_row`);
3. one statement: upsert the current-state row, append the history instance (a replayed
   one is ignored), rebuild the entity document from its attribute rows (ADR 0014: the
   rows read from the table plus the row just written, which the same statement cannot
   read back from the table) and write the change event, with the previous document, to
   the outbox, waking the relay at commit.

Only the ordinary case takes it: an NGSI-LD Null (a deletion) or an invalid ``datasetId``
goes through the general path, which owns those answers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, CursorResult

from cityos_kernel.events.payloads import EntityChangedV1
from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_knowledge.context.writes import merged_attribute
from cityos_knowledge.entities.attributes import attribute_row, instance_row
from cityos_knowledge.entities.model import is_null
from cityos_knowledge.entities.repository import DOCUMENT_EXPRESSION
from cityos_knowledge.errors import NotFoundError
from cityos_knowledge.outbox.writer import CHANNEL, SOURCE
from cityos_knowledge.store.history import Partitions, month_start
from cityos_knowledge.store.tables import DEFAULT_DATASET

_LOCK_SQL = """
SELECT e.types, e.deleted_at IS NOT NULL, a.body
FROM {schema}.entities AS e
LEFT JOIN {schema}.attributes AS a
  ON a.entity_id = e.id AND a.name = %(name)s AND a.dataset_id = %(dataset_id)s
WHERE e.id = %(entity_id)s
FOR UPDATE OF e
"""

_WRITE_SQL = """
WITH written AS (
  INSERT INTO {schema}.attributes AS a (
    entity_id, name, dataset_id, kind, value, value_number, value_text, geometry,
    observed_at, unit_code, body, created_at, modified_at)
  VALUES (
    %(entity_id)s, %(name)s, %(dataset_id)s, %(kind)s, CAST(%(value)s AS jsonb),
    %(value_number)s, %(value_text)s,
    ST_SetSRID(ST_GeomFromGeoJSON(CAST(%(geometry)s AS text)), 4326),
    %(observed_at)s, %(unit_code)s, CAST(%(body)s AS jsonb), %(now)s, %(now)s)
  ON CONFLICT (entity_id, name, dataset_id) DO UPDATE SET
    kind = excluded.kind, value = excluded.value, value_number = excluded.value_number,
    value_text = excluded.value_text, geometry = excluded.geometry,
    observed_at = excluded.observed_at, unit_code = excluded.unit_code,
    body = excluded.body, modified_at = excluded.modified_at
  RETURNING a.entity_id, a.name, a.dataset_id, a.body
), history AS (
  INSERT INTO {schema}.attribute_instances (
    entity_id, name, dataset_id, observed_at, has_observed_at, kind, unit_code,
    value_number, value, geometry, extras)
  VALUES (
    %(entity_id)s, %(name)s, %(dataset_id)s, %(instance_observed_at)s, %(has_observed_at)s,
    %(kind)s, %(unit_code)s, %(value_number)s, CAST(%(instance_value)s AS jsonb),
    ST_SetSRID(ST_GeomFromGeoJSON(CAST(%(geometry)s AS text)), 4326),
    CAST(%(extras)s AS jsonb))
  ON CONFLICT DO NOTHING
), current_rows AS (
  SELECT a.entity_id, a.name, a.dataset_id, a.body FROM {schema}.attributes AS a
  WHERE a.entity_id = %(entity_id)s AND NOT (a.name = %(name)s AND a.dataset_id = %(dataset_id)s)
  UNION ALL
  SELECT entity_id, name, dataset_id, body FROM written
), previous AS (
  SELECT e.entity FROM {schema}.entities AS e WHERE e.id = %(entity_id)s
), document AS (
  UPDATE {schema}.entities AS e SET
    entity = {document},
    modified_at = %(now)s
  WHERE e.id = %(entity_id)s
  RETURNING e.id, e.types, e.entity
)
INSERT INTO cityos_knowledge.outbox (tenant, topic, key, envelope)
SELECT %(tenant)s, %(topic)s, d.id,
  CAST(%(envelope)s AS jsonb) || jsonb_build_object(
    'payload', (CAST(%(envelope)s AS jsonb) -> 'payload') || jsonb_build_object(
      'entity_types', to_jsonb(d.types), 'entity', d.entity, 'previous', p.entity))
FROM document AS d CROSS JOIN previous AS p
RETURNING pg_notify(%(channel)s, '')
"""

#: The parameters of the two statements, with their PostgreSQL types (for PREPARE).
_PARAMETER_TYPES = {
    "entity_id": "text",
    "name": "text",
    "dataset_id": "text",
    "kind": "text",
    "value": "text",
    "value_number": "double precision",
    "value_text": "text",
    "geometry": "text",
    "observed_at": "timestamptz",
    "unit_code": "text",
    "body": "text",
    "now": "timestamptz",
    "instance_observed_at": "timestamptz",
    "has_observed_at": "boolean",
    "instance_value": "text",
    "extras": "text",
    "tenant": "text",
    "topic": "text",
    "envelope": "text",
    "channel": "text",
}

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A server-side prepared statement: planned once per connection, not per call."""

    name: str
    prepare: str
    execute: str
    parameters: tuple[str, ...]

    @classmethod
    def of(cls, name: str, sql: str) -> _Prepared:
        parameters: list[str] = []
        for parameter in _PLACEHOLDER.findall(sql):
            if parameter not in parameters:
                parameters.append(parameter)

        def numbered(match: re.Match[str]) -> str:
            return f"${parameters.index(match.group(1)) + 1}"

        types = ", ".join(_PARAMETER_TYPES[parameter] for parameter in parameters)
        body = _PLACEHOLDER.sub(numbered, sql)
        return cls(
            name,
            f"PREPARE {name} ({types}) AS {body}",
            f"EXECUTE {name} ({', '.join(['%s'] * len(parameters))})",
            tuple(parameters),
        )

    def run(self, connection: Connection, values: Mapping[str, Any]) -> CursorResult[Any]:
        # Prepared statements belong to the session (a rollback keeps them); the pool's
        # per-connection ``info`` remembers which ones this connection has.
        prepared = connection.connection.info.setdefault(_PREPARED_KEY, set())
        if self.name not in prepared:
            connection.exec_driver_sql(self.prepare)
            prepared.add(self.name)
        return connection.exec_driver_sql(
            self.execute, tuple(values[parameter] for parameter in self.parameters)
        )


_PREPARED_KEY = "cityos_knowledge.partial_update.prepared"

#: The two statements per tenant schema (the schema is the only part not a parameter).
_STATEMENTS: dict[str, tuple[_Prepared, _Prepared]] = {}
_STATEMENTS_LOCK = threading.Lock()


def takes_fast_path(partial: Mapping[str, Any]) -> bool:
    """Whether :func:`patch_attribute` handles this partial attribute (else the general path)."""
    dataset_id = partial.get("datasetId", DEFAULT_DATASET)
    return isinstance(dataset_id, str) and bool(dataset_id) and not is_null(partial)


def _statements(connection: Connection, schema: str) -> tuple[_Prepared, _Prepared]:
    found = _STATEMENTS.get(schema)
    if found is None:
        quoted = connection.dialect.identifier_preparer.quote(schema)
        document = DOCUMENT_EXPRESSION.format(attributes="current_rows")
        with _STATEMENTS_LOCK:
            number = len(_STATEMENTS)
            found = _STATEMENTS.setdefault(
                schema,
                (
                    _Prepared.of(f"cityos_patch_lock_{number}", _LOCK_SQL.format(schema=quoted)),
                    _Prepared.of(
                        f"cityos_patch_write_{number}",
                        _WRITE_SQL.format(schema=quoted, document=document),
                    ),
                ),
            )
    return found


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def patch_attribute(
    connection: Connection,
    *,
    schema: str,
    tenant: str,
    partitions: Partitions,
    now: datetime,
    entity_id: str,
    name: str,
    partial: Mapping[str, Any],
    entity_type: str | None = None,
) -> None:
    """Partially update one attribute instance inside the caller's transaction.

    ``partial`` must satisfy :func:`takes_fast_path`. NotFound when the entity is absent,
    deleted, not of ``entity_type`` (the ``type`` selector), or has no such attribute
    instance; BadRequestData when the merged attribute is invalid.
    """
    lock, write = _statements(connection, schema)
    dataset_id = str(partial.get("datasetId", DEFAULT_DATASET))
    found: Any = lock.run(
        connection, {"entity_id": entity_id, "name": name, "dataset_id": dataset_id}
    ).first()
    if found is None or found[1]:
        raise NotFoundError(f"entity {entity_id} does not exist")
    types, _, existing = found
    if entity_type is not None and entity_type not in types:
        raise NotFoundError(f"entity {entity_id} is not of type {entity_type}")
    if existing is None:
        raise NotFoundError(f"entity {entity_id} has no attribute {name} ({dataset_id})")
    row = attribute_row(name, merged_attribute(existing, partial))
    instance = instance_row(entity_id, row, now)
    partitions.ensure(schema, [month_start(instance.observed_at)])
    envelope = ENTITIES_CHANGED.envelope(
        EntityChangedV1(entity_id=entity_id, entity_types=[], change="updated", attributes=[name]),
        source=SOURCE,
        tenant=tenant,
    )
    write.run(
        connection,
        {
            "entity_id": entity_id,
            "name": name,
            "dataset_id": row.dataset_id,
            "kind": row.kind,
            "value": _json(row.value),
            "value_number": row.value_number,
            "value_text": row.value_text,
            "geometry": row.geometry,
            "observed_at": row.observed_at,
            "unit_code": row.unit_code,
            "body": _json(row.body),
            "now": now,
            "instance_observed_at": instance.observed_at,
            "has_observed_at": instance.has_observed_at,
            "instance_value": _json(instance.value),
            "extras": _json(instance.extras),
            "tenant": tenant,
            "topic": ENTITIES_CHANGED.name,
            "envelope": ENTITIES_CHANGED.encode(envelope).decode(),
            "channel": CHANNEL,
        },
    )
