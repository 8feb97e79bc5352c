"""Temporal writes: append instances, modify or delete one, delete an attribute's or an
entity's whole history (ETSI GS CIM 009 §5.6.11-5.6.16)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select, tuple_

from cityos_knowledge.context.writes import ContextWriter
from cityos_knowledge.entities.attributes import (
    INSTANCE_URN,
    MAIN_MEMBER,
    AttributeRow,
    InstanceRow,
    attribute_row,
    instance_row,
)
from cityos_knowledge.entities.model import is_null
from cityos_knowledge.entities.repository import (
    append_instances,
    delete_attributes,
    insert_new_entities,
    revive_entities,
    set_types,
    upsert_attributes,
)
from cityos_knowledge.errors import BadRequestDataError, NotFoundError
from cityos_knowledge.store.history import month_start
from cityos_knowledge.store.tables import (
    DEFAULT_DATASET,
    attribute_instances,
    attributes,
    entities,
)
from cityos_knowledge.temporal.reads import render_row

history = attribute_instances


def parse_instance_id(instance_id: str) -> str:
    """``urn:ngsi-ld:attribute:instance:<uuid>`` (or the bare uuid) → the uuid."""
    text = instance_id.removeprefix(INSTANCE_URN)
    try:
        return str(uuid.UUID(text))
    except ValueError as exc:
        raise NotFoundError(f"no attribute instance {instance_id}") from exc


class TemporalWriter(ContextWriter):
    """Context writer plus the operations of the temporal API."""

    def append_history(
        self,
        entity_id: str,
        types: list[str] | None,
        instances: Mapping[str, list[dict[str, Any]]],
        *,
        create: bool,
        scopes: list[str] | None = None,
    ) -> bool:
        """Append attribute instances; the current state follows the latest observedAt.

        An instance observed at the same instant as a stored one (same attribute and
        datasetId) replaces it: the client's latest word on that instant wins.
        An instance whose value is NGSI-LD Null records a deletion (4.5.7): kept in the
        history, and when it is the latest it removes the attribute from the current state.
        Creates the entity when ``create`` and it does not exist (then ``types`` is
        required); returns whether it was created.
        """
        pairs = [(name, instance) for name, items in instances.items() for instance in items]
        rows: list[AttributeRow] = [attribute_row(name, instance) for name, instance in pairs]
        deletions = {
            id(row) for row, (_, instance) in zip(rows, pairs, strict=True) if is_null(instance)
        }
        state = self._lock(entity_id)
        created = False
        if state is None or state.deleted:
            if not create:
                raise NotFoundError(f"entity {entity_id} does not exist")
            if not types:
                raise BadRequestDataError(f"entity {entity_id} has no type")
            # The scope a new temporal entity comes with is its current scope.
            if state is None:
                insert_new_entities(self._connection, [(entity_id, types, scopes)], self._now)
            else:
                revive_entities(self._connection, [(entity_id, types, scopes)], self._now)
            created = True
        elif types:
            added = [t for t in types if t not in state.types]
            if added:
                set_types(self._connection, [(entity_id, state.types + added)])
        history_rows = [instance_row(entity_id, row, self._now) for row in rows]
        self._partitions.ensure(self._schema, {month_start(r.observed_at) for r in history_rows})
        self._replace_same_instants(entity_id, history_rows)
        append_instances(self._connection, self._schema, history_rows)
        latest: dict[tuple[str, str], AttributeRow] = {}
        for row, stored in zip(rows, history_rows, strict=True):
            known = latest.get((row.name, row.dataset_id))
            if known is None or (known.observed_at or self._now) <= stored.observed_at:
                latest[(row.name, row.dataset_id)] = row
        written = upsert_attributes(
            self._connection,
            [(entity_id, row) for row in latest.values() if id(row) not in deletions],
            self._now,
            only_newer=True,
            same_instant=True,
        )
        names = {name for _, name, _ in written}
        for row in latest.values():
            if id(row) in deletions and self._delete_unless_newer(entity_id, row):
                names.add(row.name)
        if created or names:
            self._note(entity_id, "created" if created else "updated", names)
        return created

    def _replace_same_instants(self, entity_id: str, rows: list[InstanceRow]) -> None:
        """Drop the stored instances that ``rows`` observe again (same name, datasetId and
        instant), so that appending them replaces those instead of being ignored."""
        observed = [
            (row.name, row.dataset_id, row.observed_at) for row in rows if row.has_observed_at
        ]
        if observed:
            self._connection.execute(
                history.delete().where(
                    history.c.entity_id == entity_id,
                    tuple_(history.c.name, history.c.dataset_id, history.c.observed_at).in_(
                        observed
                    ),
                )
            )

    def _delete_unless_newer(self, entity_id: str, row: AttributeRow) -> bool:
        """Remove the current instance ``row`` deletes, unless it was observed later."""
        condition = [
            attributes.c.entity_id == entity_id,
            attributes.c.name == row.name,
            attributes.c.dataset_id == row.dataset_id,
        ]
        if row.observed_at is not None:
            condition.append(
                or_(attributes.c.observed_at.is_(None), attributes.c.observed_at <= row.observed_at)
            )
        deleted = self._connection.execute(attributes.delete().where(*condition))
        return bool(deleted.rowcount)

    def modify_instance(
        self, entity_id: str, name: str, instance_id: str, partial: Mapping[str, Any]
    ) -> None:
        """Change the value or sub-attributes of one instance (not its observedAt)."""
        key = parse_instance_id(instance_id)
        row = self._connection.execute(
            select(history)
            .where(
                history.c.entity_id == entity_id,
                history.c.name == name,
                history.c.instance_id == key,
            )
            .with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"no instance {instance_id} of {name} in entity {entity_id}")
        current = render_row(row)
        current.pop("instanceId")
        for member in ("instanceId", "createdAt", "modifiedAt"):
            partial = {k: v for k, v in partial.items() if k != member}
        if "observedAt" in partial and partial["observedAt"] != current.get("observedAt"):
            raise BadRequestDataError("an instance's observedAt cannot be modified")
        if partial.get("datasetId", row.dataset_id) != row.dataset_id and not (
            row.dataset_id == DEFAULT_DATASET and "datasetId" not in partial
        ):
            raise BadRequestDataError("an instance's datasetId cannot be modified")
        if "type" in partial and partial["type"] != row.kind:
            current = {k: v for k, v in current.items() if k not in MAIN_MEMBER.values()}
        merged = attribute_row(name, {**current, **partial})
        updated = instance_row(entity_id, merged, row.observed_at)
        self._connection.execute(
            history.update()
            .where(
                history.c.entity_id == entity_id,
                history.c.name == name,
                history.c.instance_id == key,
                history.c.observed_at == row.observed_at,
            )
            .values(
                kind=updated.kind,
                unit_code=updated.unit_code,
                value_number=updated.value_number,
                value=updated.value,
                geometry=updated.geometry,
                extras=updated.extras,
                modified_at=self._now,
            )
        )

    def delete_instance(self, entity_id: str, name: str, instance_id: str) -> None:
        key = parse_instance_id(instance_id)
        deleted = self._connection.execute(
            history.delete().where(
                history.c.entity_id == entity_id,
                history.c.name == name,
                history.c.instance_id == key,
            )
        ).rowcount
        if not deleted:
            raise NotFoundError(f"no instance {instance_id} of {name} in entity {entity_id}")

    def delete_attribute_history(
        self, entity_id: str, name: str, *, dataset_id: str | None, delete_all: bool
    ) -> None:
        """Delete the history of one attribute (default instance, a datasetId, or all)."""
        condition = [history.c.entity_id == entity_id, history.c.name == name]
        if not delete_all:
            condition.append(history.c.dataset_id == (dataset_id or DEFAULT_DATASET))
        if not self._connection.execute(history.delete().where(*condition)).rowcount:
            raise NotFoundError(f"entity {entity_id} has no history of {name}")

    def purge(self, entity_id: str) -> None:
        """Delete an entity with its whole history (DELETE /temporal/entities/{id})."""
        state = self._lock(entity_id, with_document=True)
        if state is None:
            raise NotFoundError(f"entity {entity_id} does not exist")
        self._connection.execute(history.delete().where(history.c.entity_id == entity_id))
        delete_attributes(self._connection, entity_id)
        self._connection.execute(entities.delete().where(entities.c.id == entity_id))
        if not state.deleted:
            self._note(entity_id, "deleted", [], state.document)
            self._touched[entity_id].change = "deleted"
