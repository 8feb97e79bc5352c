"""Apply a batch of observations to the stores in one transaction.

For each batch: every observation becomes a staging row (:mod:`.staging`, the only
per-observation Python), the rows are COPied into a session-local staging table, and SQL
(:mod:`.statements`) appends them to the history (conflicts ignored) and moves the current
state forward (an attribute is overwritten only by a later observedAt); unknown entities
are created with the type the observation carries, and one ``knowledge.entities.changed.v1``
event per changed entity goes to the outbox — all in ONE transaction, committed before the
consumer loop commits the offsets. A replayed batch therefore changes nothing and emits
nothing: instances are unique on entity, attribute, datasetId and observedAt, and the
current state does not move for an observedAt it has already seen.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from cityos_kernel.bus.consumer import Message
from cityos_kernel.bus.port import Delivery
from cityos_knowledge.entities.repository import (
    EntityState,
    insert_new_entities,
    lock_entities,
    revive_entities,
    set_types,
)
from cityos_knowledge.errors import KnowledgeError
from cityos_knowledge.ingest.staging import Stager, TenantRows
from cityos_knowledge.ingest.statements import append_history, stage, upsert_current
from cityos_knowledge.outbox.writer import Announcement, announce_documents
from cityos_knowledge.store.database import KnowledgeStore, bind_schema

logger = logging.getLogger(__name__)

INSTANCES_WRITTEN = Counter(
    "cityos_knowledge_ingest_instances_total", "Attribute instances appended by the ingest"
)
INSTANCES_IGNORED = Counter(
    "cityos_knowledge_ingest_replayed_total",
    "Attribute instances the ingest ignored because the history already had them",
)

#: Called with a delivery and the reason it cannot be applied (publishes a dead letter).
Rejecter = Callable[[Delivery, str], None]

#: Tracked objects per observation message that live until its batch commits (its decoded
#: envelope: five pydantic models with their field sets, a UUID, a list, the message), with
#: room to spare; times the batch size, the garbage collector's generation-0 threshold.
GC_OBJECTS_PER_MESSAGE = 25


def raise_gc_threshold(threshold: int) -> None:
    """Raise the garbage collector's generation-0 threshold to ``threshold``; never lower it.

    Process-wide, like the MQTT ingestion's (ADR 0025): a batch's envelopes live until its
    commit, and with CPython's default (700) every one of them is traversed by several
    collections while alive — about a quarter of the ingest's Python (ADR 0061).
    """
    collect_after, *older = gc.get_threshold()
    if threshold > collect_after > 0:
        gc.set_threshold(threshold, *older)
        logger.info("garbage-collector threshold raised to %d", threshold)


@dataclass
class IngestResult:
    """What one batch did (for metrics, logs and tests)."""

    observations: int = 0
    instances_written: int = 0
    entities_created: int = 0
    events: int = 0
    rejected: int = 0


class ObservationApplier:
    """Applies observation batches to one database (the ingest consumer's handler).

    One per consumer: it remembers expanded names between batches and is not thread-safe.
    """

    def __init__(
        self,
        store: KnowledgeStore,
        *,
        vocabulary: str,
        reject: Rejecter | None = None,
        after_commit: Callable[[], None] | None = None,
        python_phase: threading.Lock | None = None,
        gc_threshold: int = 0,
    ) -> None:
        self._store = store
        self._stager = Stager(vocabulary)
        self._reject = reject
        self._after_commit = after_commit
        #: Raised on the first batch (the consumer's start), not when the applier is built.
        self._gc_threshold = gc_threshold
        #: Held while staging (pure Python); shared with the other members' decoding.
        self._python_phase: contextlib.AbstractContextManager[Any] = (
            python_phase or contextlib.nullcontext()
        )

    def __call__(self, messages: Sequence[Message]) -> None:
        self.apply(messages)

    def apply(self, messages: Sequence[Message]) -> IngestResult:
        """Apply a batch in one transaction; invalid observations are rejected (dead letter)."""
        if self._gc_threshold:
            raise_gc_threshold(self._gc_threshold)
            self._gc_threshold = 0
        result = IngestResult()
        now = datetime.now(UTC)
        stager = self._stager
        rejected: list[tuple[Delivery, str]] = []
        with self._python_phase:
            stager.start_batch()
            for seq, message in enumerate(messages):
                try:
                    result.observations += stager.stage(message.envelope, seq)
                except KnowledgeError as exc:
                    rejected.append((message.delivery, str(exc)))
        for delivery, reason in rejected:  # outside the lock: a dead letter may wait on I/O
            self._rejected(delivery, reason)
            result.rejected += 1
        batches = stager.tenants
        if not batches:
            return result
        schemas = {tenant: self._store.tenants.ensure(tenant) for tenant in batches}
        for tenant, rows in batches.items():
            self._store.partitions.ensure(schemas[tenant], rows.months)
        with self._store.engine.begin() as raw:
            for tenant, rows in batches.items():
                connection = bind_schema(raw, schemas[tenant])
                self._apply_tenant(connection, tenant, schemas[tenant], rows, now, result)
        INSTANCES_WRITTEN.inc(result.instances_written)
        INSTANCES_IGNORED.inc(result.observations - result.instances_written)
        if result.events and self._after_commit is not None:
            self._after_commit()
        return result

    def _rejected(self, delivery: Delivery, reason: str) -> None:
        logger.warning(
            "ingest: rejecting %s[%d]@%d: %s",
            delivery.topic,
            delivery.partition,
            delivery.offset,
            reason,
        )
        if self._reject is None:
            raise RuntimeError(f"an observation cannot be applied and has no dead letter: {reason}")
        self._reject(delivery, reason)

    def _apply_tenant(
        self,
        connection: Any,
        tenant: str,
        schema: str,
        rows: TenantRows,
        now: datetime,
        result: IngestResult,
    ) -> None:
        stage(connection, rows.lines)
        ids = list(rows.types)
        states = lock_entities(connection, ids)
        missing = [(i, rows.types[i], None) for i in ids if i not in states]
        created = insert_new_entities(connection, missing, now)
        raced = [i for i, _, _ in missing if i not in created]
        states.update(lock_entities(connection, raced))
        revived, typed = _revivals_and_new_types(states, rows.types)
        revive_entities(connection, [(i, rows.types[i], None) for i in revived], now)
        set_types(connection, typed)
        created |= set(revived)
        written = upsert_current(connection, schema, now)
        result.instances_written += append_history(connection, schema, len(rows.lines))
        changed_attributes: dict[str, set[str]] = defaultdict(set)
        for entity_id, name in written:
            changed_attributes[entity_id].add(name)
        changed = created | {i for i, _ in typed} | set(changed_attributes)
        announcements = [
            Announcement(
                entity_id,
                "created" if entity_id in created else "updated",
                sorted(changed_attributes.get(entity_id, ())),
                rows.correlation.get(entity_id),
            )
            for entity_id in sorted(changed)
        ]
        result.events += announce_documents(connection, schema, tenant, announcements, now)
        result.entities_created += len(created)


def _revivals_and_new_types(
    states: dict[str, EntityState], wanted: dict[str, list[str]]
) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Deleted entities to bring back, and live ones that gain a type."""
    revived: list[str] = []
    typed: list[tuple[str, list[str]]] = []
    for entity_id, state in states.items():
        if state.deleted:
            revived.append(entity_id)
            continue
        extra = [t for t in wanted[entity_id] if t not in state.types]
        if extra:
            typed.append((entity_id, state.types + extra))
    return revived, typed
