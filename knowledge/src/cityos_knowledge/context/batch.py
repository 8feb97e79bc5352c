"""Batch entity operations: one transaction, one savepoint per entity.

An entity that fails (already exists, not found, bad data) is rolled back to its savepoint
and reported with its error; the others commit together with their change events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from cityos_knowledge.context.writes import ContextWriter
from cityos_knowledge.errors import KnowledgeError


@dataclass(frozen=True, slots=True)
class BatchError:
    """Why one entity of a batch failed (the API renders it as a ProblemDetails)."""

    entity_id: str | None
    error: KnowledgeError


@dataclass
class BatchResult:
    """The ids that succeeded, and the errors of those that did not.

    ``created`` lists the successful ids that did not exist before (an upsert answers 201
    only for those).
    """

    success: list[str] = field(default_factory=list)
    errors: list[BatchError] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


#: Applies one item with the writer and returns the entity id it concerned.
BatchStep = Callable[[ContextWriter, Any], str]


def run_batch(
    connection: Connection, writer: ContextWriter, items: Sequence[Any], step: BatchStep
) -> BatchResult:
    """Apply ``step`` to every item, each in its own savepoint."""
    result = BatchResult()
    for item in items:
        savepoint = connection.begin_nested()
        try:
            entity_id = step(writer, item)
        except KnowledgeError as exc:
            savepoint.rollback()
            result.errors.append(BatchError(_id_of(item), exc))
            continue
        savepoint.commit()
        result.success.append(entity_id)
    return result


def _id_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        entity_id = item.get("id")
        return entity_id if isinstance(entity_id, str) else None
    return None
