"""Apply a batch of observations to the stores in one transaction.

For each batch: the current state is upserted (an attribute is overwritten only by a later
observedAt), every observation is appended to the history (COPY, conflicts ignored), unknown
entities are created with the type the observation carries, and one
``knowledge.entities.changed.v1`` event per changed entity goes to the outbox — all in ONE
transaction, committed before the consumer loop commits the offsets. A replayed batch
therefore changes nothing and emits nothing: instances are unique on entity, attribute,
datasetId and observedAt, and the current state does not move for an observedAt it has
already seen.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from cityos_kernel.bus.consumer import Message
from cityos_kernel.bus.port import Delivery
from cityos_kernel.events.payloads import EntityChangedV1, ObservationV1
from cityos_knowledge.entities.attributes import (
    MAIN_MEMBER,
    AttributeRow,
    InstanceRow,
    attribute_row,
    format_datetime,
    instance_row,
)
from cityos_knowledge.entities.repository import (
    EntityState,
    append_instances,
    insert_new_entities,
    lock_entities,
    refresh_documents,
    revive_entities,
    set_types,
    upsert_attributes,
)
from cityos_knowledge.errors import KnowledgeError
from cityos_knowledge.ingest.terms import expand_term
from cityos_knowledge.outbox.writer import EntityChange, append_changes
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.history import month_start
from cityos_knowledge.store.tenants import validate_tenant

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


@dataclass
class IngestResult:
    """What one batch did (for metrics, logs and tests)."""

    observations: int = 0
    instances_written: int = 0
    entities_created: int = 0
    events: int = 0
    rejected: int = 0


@dataclass
class _TenantBatch:
    """The rows one tenant's part of a batch turns into."""

    types: dict[str, list[str]] = field(default_factory=dict)
    latest: dict[tuple[str, str, str], AttributeRow] = field(default_factory=dict)
    instances: list[InstanceRow] = field(default_factory=list)
    correlation: dict[str, str] = field(default_factory=dict)


def observation_attributes(
    observation: ObservationV1, vocabulary: str
) -> list[tuple[str, dict[str, Any]]]:
    """The observation's attributes as expanded NGSI-LD attributes (name, body)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for measured in observation.attributes:
        kind = measured.kind
        body: dict[str, Any] = {"type": kind, MAIN_MEMBER[kind]: measured.value}
        observed = measured.observed_at
        if observed.tzinfo is None:
            observed = observed.replace(tzinfo=UTC)
        body["observedAt"] = format_datetime(observed)
        if measured.unit_code:
            body["unitCode"] = measured.unit_code
        if measured.dataset_id:
            body["datasetId"] = measured.dataset_id
        if kind == "VocabProperty" and isinstance(measured.value, str):
            body["vocab"] = expand_term(measured.value, vocabulary)
        found.append((expand_term(measured.name, vocabulary), body))
    return found


class ObservationApplier:
    """Applies observation batches to one database (the ingest consumer's handler)."""

    def __init__(
        self,
        store: KnowledgeStore,
        *,
        vocabulary: str,
        reject: Rejecter | None = None,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._vocabulary = vocabulary
        self._reject = reject
        self._after_commit = after_commit

    def __call__(self, messages: Sequence[Message]) -> None:
        self.apply(messages)

    def apply(self, messages: Sequence[Message]) -> IngestResult:
        """Apply a batch in one transaction; invalid observations are rejected (dead letter)."""
        result = IngestResult()
        now = datetime.now(UTC)
        batches: dict[str, _TenantBatch] = defaultdict(_TenantBatch)
        for message in messages:
            try:
                self._collect(message, batches, now)
            except KnowledgeError as exc:
                self._rejected(message.delivery, str(exc))
                result.rejected += 1
                continue
            result.observations += len(message.envelope.payload.attributes)  # type: ignore[attr-defined]
        if not batches:
            return result
        schemas = {tenant: self._store.tenants.ensure(tenant) for tenant in batches}
        for tenant, batch in batches.items():
            months = {month_start(row.observed_at) for row in batch.instances}
            self._store.partitions.ensure(schemas[tenant], months)
        with self._store.engine.begin() as raw:
            for tenant, batch in batches.items():
                connection = bind_schema(raw, schemas[tenant])
                self._apply_tenant(connection, tenant, schemas[tenant], batch, now, result)
        INSTANCES_WRITTEN.inc(result.instances_written)
        INSTANCES_IGNORED.inc(
            sum(len(b.instances) for b in batches.values()) - result.instances_written
        )
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

    def _collect(self, message: Message, batches: dict[str, _TenantBatch], now: datetime) -> None:
        envelope = message.envelope
        observation = envelope.payload
        if not isinstance(observation, ObservationV1):
            raise TypeError(f"not an observation: {type(observation).__name__}")
        tenant = validate_tenant(envelope.tenant)
        rows = [
            attribute_row(name, body)
            for name, body in observation_attributes(observation, self._vocabulary)
        ]
        batch = batches[tenant]
        entity_id = observation.entity_id
        entity_type = expand_term(observation.entity_type, self._vocabulary)
        types = batch.types.setdefault(entity_id, [])
        if entity_type not in types:
            types.append(entity_type)
        batch.correlation.setdefault(entity_id, envelope.correlation_id)
        for row in rows:
            batch.instances.append(instance_row(entity_id, row, now))
            key = (entity_id, row.name, row.dataset_id)
            known = batch.latest.get(key)
            if known is None or _later(row, known):
                batch.latest[key] = row

    def _apply_tenant(
        self,
        connection: Any,
        tenant: str,
        schema: str,
        batch: _TenantBatch,
        now: datetime,
        result: IngestResult,
    ) -> None:
        ids = list(batch.types)
        states = lock_entities(connection, ids)
        missing = [(i, batch.types[i], None) for i in ids if i not in states]
        created = insert_new_entities(connection, missing, now)
        raced = [i for i, _, _ in missing if i not in created]
        states.update(lock_entities(connection, raced))
        revived, typed = _revivals_and_new_types(states, batch.types)
        revive_entities(connection, [(i, batch.types[i], None) for i in revived], now)
        set_types(connection, typed)
        created |= set(revived)
        written = upsert_attributes(
            connection,
            [(key[0], row) for key, row in batch.latest.items()],
            now,
            only_newer=True,
        )
        result.instances_written += append_instances(connection, schema, batch.instances)
        changed_attributes: dict[str, set[str]] = defaultdict(set)
        for entity_id, name, _dataset in written:
            changed_attributes[entity_id].add(name)
        changed = created | {i for i, _ in typed} | set(changed_attributes)
        documents = refresh_documents(connection, schema, changed, now)
        changes = [
            EntityChange(
                tenant,
                EntityChangedV1(
                    entity_id=entity_id,
                    entity_types=document.types,
                    change="created" if entity_id in created else "updated",
                    attributes=sorted(changed_attributes.get(entity_id, ())),
                    entity=document.entity,
                ),
                batch.correlation.get(entity_id),
            )
            for entity_id, document in sorted(documents.items())
        ]
        result.events += append_changes(connection, changes)
        result.entities_created += len(created)


def _later(row: AttributeRow, known: AttributeRow) -> bool:
    if row.observed_at is None or known.observed_at is None:
        return True
    return row.observed_at >= known.observed_at


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
