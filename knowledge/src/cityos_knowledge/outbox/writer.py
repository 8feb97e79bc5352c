"""Writing events into the outbox, inside the transaction of the change they describe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, text

from cityos_kernel.events.payloads import EntityChangedV1
from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_knowledge.store.tables import outbox

#: The NOTIFY channel that wakes the relay when a transaction with events commits.
CHANNEL = "cityos_knowledge_outbox"

#: ``source`` of the envelopes the knowledge layer publishes.
SOURCE = "knowledge"


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
                "envelope": envelope.model_dump(mode="json"),
            }
        )
    connection.execute(insert(outbox), rows)
    # Delivered only if and when the transaction commits; several in one are folded.
    connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    return len(rows)
