"""The partial update of one attribute (PATCH /entities/{id}/attrs/{attrId}), group committed.

The general write path (:class:`cityos_knowledge.context.writes.ContextWriter`) runs about
nine statements for this operation and builds most of them with SQLAlchemy Core each time;
the statements' construction cost more than running them. This is the hot write of the
NGSI-LD API (a device or an application updating one value), so it has its own path with
the same effects and guarantees (ADR 0018), written as SQL text prepared per tenant schema.

Concurrent callers share one transaction (ADR 0052): :class:`PartialUpdates` queues each
caller's update and one of them applies everything queued as a batch
(:mod:`cityos_knowledge.context.group_commit`), in a transaction that, per tenant schema:

1. locks the batch's entity rows in id order (``FOR UPDATE``: the same order in every
   batch, so two batches cannot deadlock) and reads their types;
2. applies the updates in *rounds*, at most one update per entity in a round, in the order
   they were queued (two updates of one entity in one batch are two rounds: each sees the
   other's result, has its own history instance and its own event). Per round: one
   statement reads the attribute instances (after the lock, so never an instance a
   concurrent writer replaced while this one waited), Python merges and validates each
   partial attribute exactly as the general path does
   (:func:`cityos_knowledge.entities.attributes.attribute_row`), and one statement upserts
   the current-state rows, appends the history instances (a replayed one is ignored),
   updates the entity documents (the attribute's member replaced when it has one instance,
   else the document rebuilt from its attribute rows: ADR 0014) and writes one
   change event per update, with the entity before and after, to the outbox;
3. commits once: one WAL flush and one relay wake-up (``NOTIFY``, folded per transaction)
   for the whole batch. Only then is any caller of the batch answered. ``BEGIN`` travels
   with the batch's first statements and ``COMMIT`` with its last write: a batch of one
   round is two round trips.

An update refused by the validation (NotFound, BadRequestData) is left out of the batch's
statements and only its caller gets the error. A batch the database refuses as a whole is
rolled back and its updates are retried one per transaction, so each caller gets its own
outcome.

Only the ordinary case takes this path: an NGSI-LD Null (a deletion) or an invalid
``datasetId`` goes through the general path, which owns those answers.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from cityos_kernel.database import driver_errors_wrapped
from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_kernel.logging import correlation_id_var
from cityos_knowledge.context.group_commit import GroupCommit
from cityos_knowledge.context.writes import merged_attribute
from cityos_knowledge.entities.attributes import (
    AttributeRow,
    InstanceRow,
    attribute_row,
    instance_row,
)
from cityos_knowledge.entities.model import is_null
from cityos_knowledge.entities.repository import DOCUMENT_EXPRESSION
from cityos_knowledge.errors import NotFoundError
from cityos_knowledge.outbox.writer import CHANNEL, SOURCE
from cityos_knowledge.store.history import Partitions, month_start
from cityos_knowledge.store.tables import DEFAULT_DATASET

#: Updates applied in one transaction at most (more wait for the next batch).
MAX_BATCH = 64
#: Batches applied at once by one process, on as many pooled connections (ADR 0068): the
#: next batch's lock and read overlap the write and commit of the one before it.
IN_FLIGHT = 2

# Only locks: the rows it reads are those of the statement's snapshot, taken before any wait
# for a lock, so the attribute instances are read by the next statement.
_LOCK_SQL = """
SELECT count(*) FROM (
  SELECT 1 FROM {schema}.entities AS e WHERE e.id = ANY(%(ids)s) ORDER BY e.id FOR UPDATE
) AS locked
"""

# ``ids`` repeats the entities of ``keys``: the planner cannot see inside the JSON (it
# assumes 100 rows) but plans ``= ANY(ids)`` as a few index look-ups, never a table scan.
_READ_SQL = """
SELECT k.ord, e.types, e.deleted_at IS NOT NULL AS deleted, a.body
FROM jsonb_to_recordset(CAST(%(keys)s AS jsonb))
  AS k(ord integer, entity_id text, name text, dataset_id text)
LEFT JOIN (
  SELECT id, types, deleted_at FROM {schema}.entities WHERE id = ANY(%(ids)s)
) AS e ON e.id = k.entity_id
LEFT JOIN (
  SELECT entity_id, name, dataset_id, body FROM {schema}.attributes
  WHERE entity_id = ANY(%(ids)s)
) AS a ON a.entity_id = k.entity_id AND a.name = k.name AND a.dataset_id = k.dataset_id
"""

# One update per entity in ``given`` (a round), so every row below is touched once; ``ids``
# are the entities of ``given`` (see _READ_SQL).
_WRITE_SQL = """
WITH given AS (
  SELECT * FROM jsonb_to_recordset(CAST(%(given)s AS jsonb)) AS g(
    ord integer, tenant text, entity_id text, name text, dataset_id text, kind text,
    value jsonb, value_number double precision, value_text text, geometry text,
    observed_at timestamptz, unit_code text, body jsonb, now timestamptz,
    instance_observed_at timestamptz, has_observed_at boolean, instance_value jsonb,
    extras jsonb, envelope jsonb)
), written AS (
  INSERT INTO {schema}.attributes AS a (
    entity_id, name, dataset_id, kind, value, value_number, value_text, geometry,
    observed_at, unit_code, body, created_at, modified_at)
  SELECT g.entity_id, g.name, g.dataset_id, g.kind, g.value, g.value_number, g.value_text,
    ST_SetSRID(ST_GeomFromGeoJSON(g.geometry), 4326),
    g.observed_at, g.unit_code, g.body, g.now, g.now
  FROM given AS g ORDER BY g.entity_id
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
  SELECT g.entity_id, g.name, g.dataset_id, g.instance_observed_at, g.has_observed_at,
    g.kind, g.unit_code, g.value_number, g.instance_value,
    ST_SetSRID(ST_GeomFromGeoJSON(g.geometry), 4326), g.extras
  FROM given AS g ORDER BY g.entity_id
  ON CONFLICT DO NOTHING
), current_rows AS (
  SELECT a.entity_id, a.name, a.dataset_id, a.body
  FROM {schema}.attributes AS a JOIN given AS g ON g.entity_id = a.entity_id
  WHERE NOT (a.name = g.name AND a.dataset_id = g.dataset_id)
  UNION ALL
  SELECT entity_id, name, dataset_id, body FROM written
), previous AS (
  SELECT e.id, e.entity FROM {schema}.entities AS e WHERE e.id = ANY(%(ids)s)
), document AS (
  UPDATE {schema}.entities AS e SET
    entity = CASE
      WHEN NOT EXISTS (
        SELECT FROM {schema}.attributes AS o
        WHERE o.entity_id = g.entity_id AND o.name = g.name AND o.dataset_id <> g.dataset_id
      ) THEN e.entity || jsonb_build_object(g.name, g.body)
      ELSE {document} END,
    modified_at = g.now
  FROM given AS g
  WHERE e.id = g.entity_id AND e.id = ANY(%(ids)s)
  RETURNING e.id, e.types, e.entity
), events AS (
  INSERT INTO cityos_knowledge.outbox (tenant, topic, key, envelope)
  SELECT g.tenant, %(topic)s, d.id,
    g.envelope || jsonb_build_object(
      'payload', (g.envelope -> 'payload') || jsonb_build_object(
        'entity_types', to_jsonb(d.types), 'entity', d.entity, 'previous', p.entity))
  FROM given AS g
  JOIN document AS d ON d.id = g.entity_id
  JOIN previous AS p ON p.id = g.entity_id
  ORDER BY g.ord
  RETURNING 1
)
-- The round's write must have written an event per update (the lock and the checks make
-- anything else impossible); if not, the cast fails and with it the transaction, whose
-- COMMIT travels with this statement.
SELECT CAST(CASE WHEN count(*) = %(expected)s THEN '0'
            ELSE count(*) || ' of ' || %(expected)s || ' partial updates written' END AS integer),
  pg_notify(%(channel)s, '')
FROM events
"""

#: The parameters of the statements, with their PostgreSQL types (for PREPARE).
_PARAMETER_TYPES = {
    "ids": "text[]",
    "keys": "text",
    "given": "text",
    "topic": "text",
    "channel": "text",
    "expected": "integer",
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

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(values[parameter] for parameter in self.parameters)


#: How each batch's transaction starts, in the round trip of its first statements. With it,
#: PostgreSQL plans the lock and the read once per connection: its default (``auto``) plans
#: them again at every execution, because the custom plans of their arrays look cheaper than
#: the generic one, and that planning cost more than running them (0.19 ms for the read,
#: three times its execution). Their generic plans are the same index look-ups.
_BEGIN = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan"


def _run(
    batch: _Batch,
    *calls: tuple[_Prepared, Mapping[str, Any]],
    before: str | None = None,
    after: str | None = None,
) -> list[Any]:
    """Execute prepared statements in one round trip, with the SQL ``before`` and ``after``
    them; the rows of the last statement."""
    # Prepared statements belong to the session (a rollback keeps them); the pool's
    # per-connection ``info`` remembers which ones this connection has.
    prepared = batch.pooled.info.setdefault(_PREPARED_KEY, set())
    for statement, _ in calls:
        if statement.name not in prepared:
            batch.execute(statement.prepare)
            prepared.add(statement.name)
    sql = [statement.execute for statement, _ in calls]
    return batch.execute(
        "; ".join([*([before] if before else []), *sql, *([after] if after else [])]),
        tuple(argument for statement, values in calls for argument in statement.arguments(values)),
    )


_PREPARED_KEY = "cityos_knowledge.partial_update.prepared"


@dataclass(frozen=True, slots=True)
class _Statements:
    lock: _Prepared
    read: _Prepared
    write: _Prepared


#: The statements per tenant schema (the schema is the only part not a parameter).
_STATEMENTS: dict[str, _Statements] = {}
_STATEMENTS_LOCK = threading.Lock()


def _statements(dialect: Dialect, schema: str) -> _Statements:
    found = _STATEMENTS.get(schema)
    if found is None:
        quoted = dialect.identifier_preparer.quote(schema)
        document = DOCUMENT_EXPRESSION.format(attributes="current_rows")
        with _STATEMENTS_LOCK:
            number = len(_STATEMENTS)
            found = _STATEMENTS.setdefault(
                schema,
                _Statements(
                    _Prepared.of(f"cityos_patch_lock_{number}", _LOCK_SQL.format(schema=quoted)),
                    _Prepared.of(f"cityos_patch_read_{number}", _READ_SQL.format(schema=quoted)),
                    _Prepared.of(
                        f"cityos_patch_write_{number}",
                        _WRITE_SQL.format(schema=quoted, document=document),
                    ),
                ),
            )
    return found


def takes_fast_path(partial: Mapping[str, Any]) -> bool:
    """Whether :class:`PartialUpdates` handles this partial attribute (else the general path)."""
    dataset_id = partial.get("datasetId", DEFAULT_DATASET)
    return isinstance(dataset_id, str) and bool(dataset_id) and not is_null(partial)


@dataclass(frozen=True, slots=True)
class PartialUpdate:
    """One caller's partial update of one attribute instance."""

    schema: str
    tenant: str
    entity_id: str
    name: str
    partial: Mapping[str, Any]
    #: The ``type`` selector: NotFound unless the entity has this type.
    entity_type: str | None
    #: The change event's envelope, made in the caller's context (its correlation id);
    #: the statement adds the entity's types and documents.
    envelope: bytes

    @property
    def dataset_id(self) -> str:
        return str(self.partial.get("datasetId", DEFAULT_DATASET))

    @classmethod
    def of(
        cls,
        *,
        schema: str,
        tenant: str,
        entity_id: str,
        name: str,
        partial: Mapping[str, Any],
        entity_type: str | None = None,
    ) -> PartialUpdate:
        """An update to submit; ``partial`` must satisfy :func:`takes_fast_path`."""
        # The envelope written straight to JSON (ADR 0023): the pydantic models cost ~8 %
        # of an API process's time in the PATCH benchmark. The test of this module decodes
        # it with the topic's schema.
        envelope = ENTITIES_CHANGED.encode_unchecked(
            {
                "entity_id": entity_id,
                "entity_types": [],
                "change": "updated",
                "attributes": [name],
                "entity": None,
                "previous": None,
            },
            source=SOURCE,
            tenant=tenant,
            correlation_id=correlation_id_var.get(),
        )
        return cls(schema, tenant, entity_id, name, partial, entity_type, envelope)


class PartialUpdates:
    """Applies partial updates, concurrent ones together (group commit, ADR 0052)."""

    def __init__(
        self,
        engine: Engine,
        partitions: Partitions,
        *,
        max_batch: int = MAX_BATCH,
        in_flight: int = IN_FLIGHT,
        linger: float = 0.0,
    ) -> None:
        self._engine = engine
        self._partitions = partitions
        self._group = GroupCommit(
            self.apply,
            max_batch=max_batch,
            in_flight=in_flight,
            linger=linger,
            name="partial-updates",
        )

    @property
    def waiting(self) -> int:
        """Updates queued behind the batch being applied."""
        return self._group.waiting

    def submit(self, update: PartialUpdate) -> None:
        """Apply ``update``; return once it is committed. NotFound when the entity is
        absent, deleted, not of ``entity_type`` or has no such attribute instance;
        BadRequestData when the merged attribute is invalid."""
        self._group.submit(update)

    async def submit_async(self, update: PartialUpdate) -> None:
        """:meth:`submit` for a coroutine: applied by the group commit's thread (ADR 0055)."""
        await self._group.submit_async(update)

    def close(self) -> None:
        """Stop the group commit's thread (what is queued is applied first)."""
        self._group.close()

    def apply(self, updates: Sequence[PartialUpdate]) -> list[BaseException | None]:
        """Apply a batch in one transaction; each update's outcome (None: applied)."""
        try:
            # The pooled DBAPI connection itself: a SQLAlchemy Connection and its result
            # objects cost ~10 % of an API process's time in the PATCH benchmark.
            pooled = self._engine.raw_connection()
            try:
                return _Batch(pooled, self._engine.dialect, self._partitions, updates).apply()
            finally:
                pooled.close()
        except DBAPIError as exc:
            if len(updates) == 1:
                return [exc]
        # Refused as a whole (a deadlock with another writer, a value the database rejects):
        # one transaction each, so only the update at fault fails.
        return [self.apply([update])[0] for update in updates]


class _Batch:
    """One batch in one transaction: the updates' outcomes as they are applied.

    The batch sends ``BEGIN`` with its first statements and ``COMMIT`` with its last write
    (the connection in autocommit mode meanwhile): two round trips fewer than a transaction
    driven by the driver. Whatever fails before the commit rolls the transaction back.
    """

    def __init__(
        self,
        pooled: PoolProxiedConnection,
        dialect: Dialect,
        partitions: Partitions,
        updates: Sequence[PartialUpdate],
    ) -> None:
        self.pooled = pooled
        self._dialect = dialect
        self._driver: Any = pooled.dbapi_connection
        self._partitions = partitions
        self._updates = updates
        self._clock = _Clock()
        self._open = False
        self.outcomes: list[BaseException | None] = [None] * len(updates)

    def apply(self) -> list[BaseException | None]:
        by_schema: dict[str, list[int]] = defaultdict(list)
        for index, update in enumerate(self._updates):
            by_schema[update.schema].append(index)
        steps: list[tuple[str, _Statements, list[tuple[_Prepared, Mapping[str, Any]]], list[int]]]
        steps = []
        for schema in sorted(by_schema):  # schemas, then ids: one lock order for every batch
            indices = by_schema[schema]
            statements = _statements(self._dialect, schema)
            lock = statements.lock, {"ids": sorted({self._updates[i].entity_id for i in indices})}
            for number, round_ in enumerate(_rounds(self._updates, indices)):
                # The first round's read goes with the lock, in the same round trip.
                steps.append((schema, statements, [lock] if number == 0 else [], round_))
        driver = self._driver
        driver.autocommit = True
        try:
            for number, (schema, statements, before, round_) in enumerate(steps):
                self._apply_round(schema, statements, round_, before, last=number == len(steps) - 1)
            if self._open:  # the last round wrote nothing
                self.execute("COMMIT")
                self._open = False
        except BaseException:
            if self._open and not driver.closed:
                self.execute("ROLLBACK")
            raise
        finally:
            if not driver.closed:
                driver.autocommit = False
        return self.outcomes

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        """Run ``sql`` on the connection; the rows of its last statement. Driver errors are
        raised as SQLAlchemy's, and a lost connection leaves the pool."""
        driver = self._driver
        with (
            driver_errors_wrapped(self._dialect, driver, sql, parameters, self.pooled.invalidate),
            driver.cursor() as cursor,
        ):
            cursor.execute(sql, parameters or None)
            return cursor.fetchall() if cursor.description is not None else []

    def _apply_round(
        self,
        schema: str,
        statements: _Statements,
        indices: list[int],
        before: list[tuple[_Prepared, Mapping[str, Any]]],
        *,
        last: bool,
    ) -> None:
        now = self._clock.tick()
        keys = [
            {
                "ord": index,
                "entity_id": self._updates[index].entity_id,
                "name": self._updates[index].name,
                "dataset_id": self._updates[index].dataset_id,
            }
            for index in indices
        ]
        ids = sorted({self._updates[index].entity_id for index in indices})
        read = (statements.read, {"keys": orjson.dumps(keys).decode(), "ids": ids})
        begin = None if self._open else _BEGIN
        self._open = True
        found = {row[0]: row for row in _run(self, *before, read, before=begin)}
        given: list[dict[str, Any]] = []
        months: set[date] = set()
        for index in indices:
            update = self._updates[index]
            try:
                row = _checked(update, found[index])
                instance = instance_row(update.entity_id, row, now)
            except Exception as exc:  # this update's error only; the others go on
                self.outcomes[index] = exc
                continue
            months.add(month_start(instance.observed_at))
            given.append(_given(index, update, row, instance, now))
        if not given:
            return
        self._partitions.ensure(schema, months)
        values = {
            "given": orjson.dumps(given).decode(),
            "ids": sorted({item["entity_id"] for item in given}),
            "topic": ENTITIES_CHANGED.name,
            "channel": CHANNEL,
            "expected": len(given),
        }
        _run(self, (statements.write, values), after="COMMIT" if last else None)
        if last:
            self._open = False


def _rounds(updates: Sequence[PartialUpdate], indices: list[int]) -> list[list[int]]:
    """``indices`` in rounds of at most one update per entity, keeping the queue's order."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = defaultdict(int)
    for index in indices:
        number = seen[updates[index].entity_id]
        seen[updates[index].entity_id] = number + 1
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(index)
    return rounds


class _Clock:
    """Write times that increase from round to round (each update's own history instant
    when its attribute has no observedAt, and its entity's modifiedAt)."""

    def __init__(self) -> None:
        self._last: datetime | None = None

    def tick(self) -> datetime:
        now = datetime.now(UTC)
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(microseconds=1)
        self._last = now
        return now


def _given(
    index: int, update: PartialUpdate, row: AttributeRow, instance: InstanceRow, now: datetime
) -> dict[str, Any]:
    """One row of the write statement's ``given`` (absent keys are NULL)."""
    values = {
        "ord": index,
        "tenant": update.tenant,
        "entity_id": update.entity_id,
        "name": update.name,
        "dataset_id": row.dataset_id,
        "kind": row.kind,
        "value": row.value,
        "value_number": row.value_number,
        "value_text": row.value_text,
        "geometry": row.geometry,
        "observed_at": row.observed_at,
        "unit_code": row.unit_code,
        "body": row.body,
        "now": now,
        "instance_observed_at": instance.observed_at,
        "has_observed_at": instance.has_observed_at,
        "instance_value": instance.value,
        "extras": instance.extras,
        "envelope": orjson.Fragment(update.envelope),
    }
    return {key: value for key, value in values.items() if value is not None}


def _checked(update: PartialUpdate, found: Any) -> AttributeRow:
    """The attribute row of ``update`` merged onto the stored instance, or its refusal."""
    _, types, deleted, existing = found
    if types is None or deleted:
        raise NotFoundError(f"entity {update.entity_id} does not exist")
    if update.entity_type is not None and update.entity_type not in types:
        raise NotFoundError(f"entity {update.entity_id} is not of type {update.entity_type}")
    if existing is None:
        raise NotFoundError(
            f"entity {update.entity_id} has no attribute {update.name} ({update.dataset_id})"
        )
    return attribute_row(update.name, merged_attribute(existing, update.partial))
