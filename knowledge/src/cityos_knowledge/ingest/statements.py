"""The ingest's set-based SQL: from the staging rows to the history and the current state.

A batch's observations are COPied into a session-local staging table
(:data:`~cityos_knowledge.ingest.staging.STAGING_COLUMNS`, cleared at commit); two
statements then do what used to be per-observation Python:

- :func:`append_history` — ``INSERT … SELECT`` of every staged row into the tenant's
  history, first plainly inside a savepoint (as cheap as COPY), and only if some row is
  already there (a replay) again with ``ON CONFLICT DO NOTHING``;
- :func:`upsert_current` — the latest staged row of each (entity, attribute, datasetId)
  becomes the current-state row, its NGSI-LD body built in SQL, overwriting an existing row
  only for a strictly later observedAt (ADR 0012).

The statements are plain SQL strings run with the DBAPI's own parameters: nothing is
compiled per batch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg2.errors
from sqlalchemy import Connection

from cityos_knowledge.entities.attributes import MAIN_MEMBER
from cityos_knowledge.ingest.staging import STAGING_COLUMNS
from cityos_knowledge.store.tables import DEFAULT_DATASET

STAGING_TABLE = "knowledge_ingest_rows"

_STAGING_DDL = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (
  seq integer, entity_id text COLLATE "C", name text COLLATE "C", dataset_id text COLLATE "C",
  observed_at timestamptz,
  observed_text text, kind text, unit_code text, value_number double precision, value text,
  geometry text
) ON COMMIT DELETE ROWS"""

_PREPARE_SQL = f"""
SET LOCAL jit = off;
{_STAGING_DDL};
DELETE FROM {STAGING_TABLE}
"""  # noqa: S608 — constant; the DELETE empties what a previous tenant of the batch staged

_SAVEPOINT = "knowledge_ingest_history"

_HISTORY_SQL = f"""
INSERT INTO {{schema}}.attribute_instances
  (entity_id, name, dataset_id, observed_at, kind, unit_code, value_number, value, geometry)
SELECT entity_id, name, dataset_id, observed_at, kind, unit_code, value_number,
       CASE WHEN value_number IS NULL THEN CAST(value AS jsonb) END,
       ST_SetSRID(ST_GeomFromGeoJSON(geometry), 4326)
FROM {STAGING_TABLE}"""  # noqa: S608 — the schema is quoted by the dialect, the rest is constant

_MEMBER_SQL = (
    "CASE kind "
    + " ".join(f"WHEN '{kind}' THEN '{member}'" for kind, member in MAIN_MEMBER.items())
    + " END"
)

_CURRENT_SQL = f"""
INSERT INTO {{schema}}.attributes AS a
  (entity_id, name, dataset_id, kind, value, value_number, value_text, geometry, observed_at,
   unit_code, body, created_at, modified_at)
SELECT entity_id, name, dataset_id, kind, json, value_number,
       CASE WHEN kind = 'GeoProperty' THEN NULL
            WHEN jsonb_typeof(json) = 'string' THEN json #>> '{{{{}}}}'
            WHEN jsonb_typeof(json -> '@value') = 'string' THEN json ->> '@value' END,
       ST_SetSRID(ST_GeomFromGeoJSON(geometry), 4326), observed_at, unit_code,
       jsonb_build_object('type', kind, {_MEMBER_SQL}, json, 'observedAt', observed_text)
         || CASE WHEN unit_code IS NULL THEN '{{{{}}}}'::jsonb
                 ELSE jsonb_build_object('unitCode', unit_code) END
         || CASE WHEN dataset_id = '{DEFAULT_DATASET}' THEN '{{{{}}}}'::jsonb
                 ELSE jsonb_build_object('datasetId', dataset_id) END,
       %(now)s, %(now)s
FROM (
  SELECT DISTINCT ON (entity_id, name, dataset_id)
         entity_id, name, dataset_id, kind, CAST(value AS jsonb) AS json, value_number,
         geometry, observed_at, observed_text, unit_code
  FROM {STAGING_TABLE}
  ORDER BY entity_id, name, dataset_id, observed_at DESC, seq DESC
) AS latest
ON CONFLICT (entity_id, name, dataset_id) DO UPDATE SET
  kind = excluded.kind, value = excluded.value, value_number = excluded.value_number,
  value_text = excluded.value_text, geometry = excluded.geometry,
  observed_at = excluded.observed_at, unit_code = excluded.unit_code, body = excluded.body,
  modified_at = excluded.modified_at
WHERE a.observed_at IS NULL OR excluded.observed_at > a.observed_at
RETURNING a.entity_id, a.name
"""  # noqa: S608 — the schema is quoted by the dialect, the rest is constant


def _cursor(connection: Connection) -> Any:
    dbapi_connection: Any = connection.connection.dbapi_connection
    return dbapi_connection.cursor()


def _quoted(connection: Connection, schema: str) -> str:
    return str(connection.dialect.identifier_preparer.quote(schema))


def stage(connection: Connection, lines: Sequence[str]) -> None:
    """Empty the session's staging table (created on first use) and COPY ``lines`` into it.

    Also turns JIT off for the transaction: row estimates of the staged and JSON record sets
    made the planner JIT-compile these short statements (~18 ms per batch); they never gain
    from it. Statements are grouped into as few round trips as possible: every one is a
    GIL hand-off between ingest consumers of one process.
    """
    with _cursor(connection) as cursor:
        cursor.execute(_PREPARE_SQL)
        text = "".join(lines)
        # One read of the whole buffer: psycopg2 otherwise takes it 8 kB at a time, and
        # takes the GIL back for every chunk — waiting each time for the other ingest
        # consumer's Python to let go of it.
        cursor.copy_expert(
            f"COPY {STAGING_TABLE} ({', '.join(STAGING_COLUMNS)}) FROM STDIN",
            io.StringIO(text),
            size=len(text) + 1,
        )


def append_history(connection: Connection, schema: str, staged: int) -> int:
    """Append the ``staged`` rows to ``schema``'s history, ignoring those it already has
    (same entity, attribute, datasetId and observedAt); return how many were new."""
    sql = _HISTORY_SQL.format(schema=_quoted(connection, schema))
    try:
        with _cursor(connection) as cursor:
            # One round trip; the plain INSERT stores every row or fails on the first one
            # already there.
            cursor.execute(f"SAVEPOINT {_SAVEPOINT}; {sql}; RELEASE SAVEPOINT {_SAVEPOINT}")
    except psycopg2.errors.UniqueViolation:
        pass
    else:
        return staged
    with _cursor(connection) as cursor:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; {sql} ON CONFLICT DO NOTHING")
        return int(cursor.rowcount)


def upsert_current(connection: Connection, schema: str, now: datetime) -> list[tuple[str, str]]:
    """Move the current state forward to the latest staged rows; return the (entity,
    attribute) pairs that changed (an older or equal observedAt changes nothing)."""
    with _cursor(connection) as cursor:
        cursor.execute(_CURRENT_SQL.format(schema=_quoted(connection, schema)), {"now": now})
        return [(entity_id, name) for entity_id, name in cursor.fetchall()]
