"""Writing events into the outbox, inside the transaction of the change they describe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Text, column, insert, select, text
from sqlalchemy.dialects.postgresql import JSONB

from cityos_kernel.events.payloads import EntityChangedV1
from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_knowledge.entities.repository import document_update_sql, recordset
from cityos_knowledge.store.tables import outbox

#: The NOTIFY channel that wakes the relay when a transaction with events commits.
CHANNEL = "cityos_knowledge_outbox"

#: ``source`` of the envelopes the knowledge layer publishes.
SOURCE = "knowledge"

_OUTBOX_RECORD = [
    column("tenant", Text),
    column("topic", Text),
    column("key", Text),
    column("envelope", JSONB),
]


@dataclass(frozen=True, slots=True)
class EntityChange:
    """One ``knowledge.entities.changed.v1`` event to be written."""

    tenant: str
    payload: EntityChangedV1
    correlation_id: str | None = None


def append_changes(connection: Connection, changes: Sequence[EntityChange]) -> int:
    """Write change events to the outbox and ask for the relay to be woken at commit."""
    if not changes:
        return 0
    rows: list[dict[str, Any]] = []
    for change in changes:
        envelope = ENTITIES_CHANGED.envelope(
            change.payload,
            source=SOURCE,
            tenant=change.tenant,
            correlation_id=change.correlation_id,
        )
        rows.append(
            {
                "tenant": change.tenant,
                "topic": ENTITIES_CHANGED.name,
                "key": change.payload.entity_id,
                "envelope": orjson.Fragment(ENTITIES_CHANGED.encode(envelope)),
            }
        )
    given = recordset(rows, _OUTBOX_RECORD)
    connection.execute(
        insert(outbox).from_select(
            ["tenant", "topic", "key", "envelope"],
            select(given.c.tenant, given.c.topic, given.c.key, given.c.envelope),
        )
    )
    # Delivered only if and when the transaction commits; several in one are folded.
    connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    return len(rows)


@dataclass(frozen=True, slots=True)
class Announcement:
    """An entity whose document is rebuilt and announced in SQL (see announce_documents)."""

    entity_id: str
    change: str
    attributes: list[str]
    correlation_id: str | None = None


_ANNOUNCE_SQL = """
WITH meta AS (
  SELECT * FROM jsonb_to_recordset(CAST(:meta AS jsonb))
    AS m(entity_id text, change text, attributes jsonb, correlation_id text)
), docs AS ({update}), events AS (
  INSERT INTO cityos_knowledge.outbox (tenant, topic, key, envelope)
  SELECT :tenant, :topic, docs.id,
    CAST(:envelope AS jsonb) || jsonb_build_object(
      'id', gen_random_uuid(),
      'correlation_id', coalesce(meta.correlation_id, gen_random_uuid()::text),
      'payload', CAST(:payload AS jsonb) || jsonb_build_object(
        'entity_id', docs.id, 'entity_types', to_jsonb(docs.types), 'change', meta.change,
        'attributes', meta.attributes, 'entity', docs.entity))
  FROM docs JOIN meta ON meta.entity_id = docs.id
  ORDER BY docs.id
  RETURNING 1
)
SELECT count(*), pg_notify(:channel, '') FROM events
"""


def announce_documents(
    connection: Connection,
    schema: str,
    tenant: str,
    announcements: Sequence[Announcement],
    now: datetime,
) -> int:
    """Rebuild the documents of the announced entities, write their change events and ask
    for the relay to be woken at commit, in one statement: the documents never travel to
    Python and back (the ingest's hot path).

    The envelope is a template made by the topic's own models (so it carries every field
    with its current name and version); SQL fills in the per-entity parts. The tests decode
    what lands in the outbox with the topic's schema.
    """
    if not announcements:
        return 0
    template = ENTITIES_CHANGED.envelope(
        EntityChangedV1(entity_id="-", entity_types=[], change="updated"),
        source=SOURCE,
        tenant=tenant,
    ).model_dump(mode="json")
    payload = template.pop("payload")
    meta = orjson.dumps(
        [
            {
                "entity_id": item.entity_id,
                "change": item.change,
                "attributes": item.attributes,
                "correlation_id": item.correlation_id,
            }
            for item in announcements
        ]
    ).decode()
    sql = _ANNOUNCE_SQL.format(update=document_update_sql(connection, schema))
    written = connection.execute(
        text(sql),
        {
            "meta": meta,
            "now": now,
            "ids": sorted({item.entity_id for item in announcements}),
            "tenant": tenant,
            "topic": ENTITIES_CHANGED.name,
            "envelope": orjson.dumps(template).decode(),
            "payload": orjson.dumps(payload).decode(),
            "channel": CHANNEL,
        },
    ).scalar_one()
    return int(written)
