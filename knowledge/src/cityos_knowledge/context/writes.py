"""Context writes of the NGSI-LD API on one tenant, inside the facade's transaction.

A :class:`ContextWriter` is built per facade call with a connection bound to the tenant's
schema and an open transaction. Each operation locks the entity row first (see
:mod:`cityos_knowledge.entities.repository`), changes attribute rows, records every written
attribute value as a history instance, and notes the change; :meth:`ContextWriter.finish`
rebuilds the touched entities' JSON and writes one change event per entity to the outbox,
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select

from cityos_kernel.events.payloads import EntityChangedV1
from cityos_knowledge.entities.attributes import (
    AttributeRow,
    InstanceRow,
    attribute_row,
    deletion_row,
    format_datetime,
    instance_row,
)
from cityos_knowledge.entities.model import NGSI_LD_NULL, Entity, Fragment, is_null
from cityos_knowledge.entities.repository import (
    EntityState,
    append_instances,
    delete_attributes,
    existing_attribute_keys,
    insert_new_entities,
    lock_entities,
    refresh_documents,
    upsert_attributes,
)
from cityos_knowledge.errors import AlreadyExistsError, BadRequestDataError, NotFoundError
from cityos_knowledge.outbox.writer import EntityChange, append_changes
from cityos_knowledge.store.history import Partitions, month_start
from cityos_knowledge.store.tables import DEFAULT_DATASET, attributes, entities

Change = Literal["created", "updated", "replaced", "deleted", "attributes_deleted"]


#: The expanded name of the entity member ``scope`` (reported like an attribute name).
SCOPE_IRI = "https://uri.etsi.org/ngsi-ld/scope"


@dataclass(frozen=True, slots=True)
class NotUpdated:
    """An attribute a partial write left alone, and why."""

    attribute_name: str
    reason: str


@dataclass
class UpdateResult:
    """Which attributes a partial write changed (NGSI-LD UpdateResult)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[NotUpdated] = field(default_factory=list)


@dataclass
class _Touched:
    change: Change
    attributes: set[str] = field(default_factory=set)
    previous: dict[str, Any] | None = None


class ContextWriter:
    """Performs context writes for one tenant within one transaction."""

    def __init__(
        self,
        connection: Connection,
        *,
        schema: str,
        tenant: str,
        now: datetime,
        partitions: Partitions,
        correlation_id: str | None = None,
    ) -> None:
        self._connection = connection
        self._schema = schema
        self._tenant = tenant
        self._now = now
        self._partitions = partitions
        self._correlation_id = correlation_id
        self._touched: dict[str, _Touched] = {}

    @property
    def connection(self) -> Connection:
        """The tenant-bound connection of the writer's transaction."""
        return self._connection

    # -- entities ------------------------------------------------------------------------

    def create(self, entity: Entity) -> None:
        """Create an entity; AlreadyExists if a live one has this id."""
        state = self._lock(entity.id)
        if state is not None and not state.deleted:
            raise AlreadyExistsError(f"entity {entity.id} already exists")
        types = entity.types or []
        if state is None:
            if not insert_new_entities(
                self._connection, [(entity.id, types, entity.scopes)], self._now
            ):
                raise AlreadyExistsError(f"entity {entity.id} already exists")
        else:
            self._connection.execute(
                entities.update()
                .where(entities.c.id == entity.id)
                .values(
                    types=types,
                    scopes=entity.scopes,
                    created_at=self._now,
                    modified_at=self._now,
                    deleted_at=None,
                )
            )
        self._write_rows(entity.id, entity.attributes)
        self._note(entity.id, "created", (row.name for row in entity.attributes))

    def replace(self, entity: Entity) -> None:
        """Replace a live entity's types, scopes and every attribute."""
        state = self._require(entity.id, with_document=True)
        delete_attributes(self._connection, entity.id)
        self._connection.execute(
            entities.update()
            .where(entities.c.id == entity.id)
            .values(types=entity.types or state.types, scopes=entity.scopes)
        )
        self._write_rows(entity.id, entity.attributes)
        self._note(entity.id, "replaced", (row.name for row in entity.attributes), state.document)

    def delete(self, entity_id: str) -> None:
        """Delete a live entity from the context; its history stays."""
        state = self._require(entity_id, with_document=True)
        last_view = self._last_view(entity_id, state)
        delete_attributes(self._connection, entity_id)
        self._connection.execute(
            entities.update()
            .where(entities.c.id == entity_id)
            .values(
                deleted_at=self._now,
                modified_at=self._now,
                entity={"id": entity_id, "type": state.types},
            )
        )
        self._touched[entity_id] = _Touched("deleted", set(), last_view)

    # -- attributes ----------------------------------------------------------------------

    def merge(self, entity_id: str, fragment: Fragment) -> None:
        """Merge-patch: add or merge attributes, delete those set to null, add types."""
        state = self._require(entity_id, with_document=True)
        self._apply_types_and_scopes(entity_id, state, fragment)
        existing = self._bodies(entity_id)
        rows = [
            attribute_row(name, merged_attribute(existing.get((name, _dataset(raw))), raw))
            for name, instances in fragment.raw.items()
            for raw in instances
        ]
        self._write_rows(entity_id, rows)
        for name, dataset_id in fragment.deleted:
            delete_attributes(self._connection, entity_id, name, dataset_id)
        self._note(entity_id, "updated", fragment.names, state.document)

    def append(self, entity_id: str, fragment: Fragment, *, no_overwrite: bool) -> UpdateResult:
        """Append attributes (replacing existing ones unless ``no_overwrite``) and types."""
        state = self._require(entity_id, with_document=True)
        self._apply_types_and_scopes(entity_id, state, fragment)
        result = UpdateResult()
        rows = fragment.attributes
        if no_overwrite:
            existing = set(self._bodies(entity_id))
            kept = [row for row in rows if (row.name, row.dataset_id) not in existing]
            for row in rows:
                if row not in kept:
                    result.not_updated.append(
                        NotUpdated(row.name, "attribute exists and noOverwrite is set")
                    )
            rows = kept
        self._write_rows(entity_id, rows)
        result.updated = _unique(row.name for row in rows)
        self._note(entity_id, "updated", result.updated, state.document)
        return result

    def update(self, entity_id: str, fragment: Fragment) -> UpdateResult:
        """Replace only the attributes (and datasetIds) the entity already has.

        Types in the fragment are added; a scope replaces the entity's scope if it has one
        and is not updated otherwise, like an attribute.
        """
        state = self._require(entity_id, with_document=True)
        existing = self._bodies(entity_id)
        result = UpdateResult()
        if fragment.scopes is not None and not state.scopes:
            result.not_updated.append(NotUpdated(SCOPE_IRI, "the entity has no scope"))
            fragment = replace(fragment, scopes=None)
        self._apply_types_and_scopes(entity_id, state, fragment)
        rows: list[AttributeRow] = []
        for row in fragment.attributes:
            if (row.name, row.dataset_id) in existing:
                rows.append(row)
            else:
                result.not_updated.append(NotUpdated(row.name, "attribute does not exist"))
        for name, dataset_id in fragment.deleted:
            if delete_attributes(self._connection, entity_id, name, dataset_id or None):
                result.updated.append(name)
            else:
                result.not_updated.append(NotUpdated(name, "attribute does not exist"))
        self._write_rows(entity_id, rows)
        result.updated = _unique([*result.updated, *(row.name for row in rows)])
        self._note(entity_id, "updated", result.updated, state.document)
        return result

    def patch_attribute(self, entity_id: str, name: str, partial: Mapping[str, Any]) -> None:
        """Partial update of one attribute instance (its datasetId says which)."""
        state = self._require(entity_id, with_document=True)
        dataset_id = _dataset(partial)
        existing = self._bodies(entity_id).get((name, dataset_id))
        if existing is None:
            raise NotFoundError(f"entity {entity_id} has no attribute {name} ({dataset_id})")
        if is_null(partial):
            delete_attributes(self._connection, entity_id, name, dataset_id)
        else:
            self._write_rows(entity_id, [attribute_row(name, merged_attribute(existing, partial))])
        self._note(entity_id, "updated", [name], state.document)

    def replace_attribute(self, entity_id: str, name: str, rows: list[AttributeRow]) -> None:
        """Replace an existing attribute by the given instances."""
        state = self._require(entity_id, with_document=True)
        if not any(key[0] == name for key in self._bodies(entity_id)):
            raise NotFoundError(f"entity {entity_id} has no attribute {name}")
        delete_attributes(self._connection, entity_id, name)
        self._write_rows(entity_id, rows)
        self._note(entity_id, "updated", [name], state.document)

    def delete_attribute(
        self, entity_id: str, name: str, *, dataset_id: str | None, delete_all: bool
    ) -> None:
        """Delete the default instance, one datasetId, or (``delete_all``) every instance."""
        state = self._require(entity_id, with_document=True)
        target = None if delete_all else (dataset_id or DEFAULT_DATASET)
        self._record_deletions(entity_id, name, target)
        if not delete_attributes(self._connection, entity_id, name, target):
            raise NotFoundError(f"entity {entity_id} has no attribute {name} to delete")
        self._note(entity_id, "attributes_deleted", [name], state.document)

    def delete_scope(self, entity_id: str) -> None:
        """Remove the entity's scope (NotFound when it has none)."""
        state = self._require(entity_id, with_document=True)
        if not state.scopes:
            raise NotFoundError(f"entity {entity_id} has no scope")
        # 4.5.6: the scope's temporal evolution records its deletion, as an empty scope.
        self._append_deletions(
            [deletion_row(entity_id, SCOPE_IRI, DEFAULT_DATASET, "Property", self._now, value=[])]
        )
        self._connection.execute(
            entities.update().where(entities.c.id == entity_id).values(scopes=None)
        )
        self._note(entity_id, "updated", [], state.document)

    def require_type(self, entity_id: str, entity_type: str | None) -> None:
        """NotFound unless the entity has ``entity_type`` (the ``type`` selector, 4.17)."""
        if entity_type is not None and entity_type not in self._require(entity_id).types:
            raise NotFoundError(f"entity {entity_id} is not of type {entity_type}")

    def prune(
        self,
        entity_id: str,
        *,
        keep: frozenset[str] | None = None,
        drop: frozenset[str] | None = None,
    ) -> list[str]:
        """Delete (every instance of) the attributes in ``drop``, or all not in ``keep``.

        The entity itself stays; returns the names deleted (purge with keep/drop, 5.6.21).
        """
        state = self._require(entity_id, with_document=True)
        present = {name for name, _ in existing_attribute_keys(self._connection, entity_id)}
        doomed = sorted(present & drop if drop is not None else present - (keep or frozenset()))
        for name in doomed:
            delete_attributes(self._connection, entity_id, name)
        if doomed:
            self._note(entity_id, "attributes_deleted", doomed, state.document)
        return doomed

    # -- the end of the transaction ------------------------------------------------------

    def finish(self) -> int:
        """Rebuild the touched entities' JSON and write their change events; return how many."""
        live = [i for i, touched in self._touched.items() if touched.change != "deleted"]
        documents = refresh_documents(self._connection, self._schema, live, self._now)
        changes: list[EntityChange] = []
        for entity_id, touched in sorted(self._touched.items()):
            document = documents.get(entity_id)
            types = document.types if document else (touched.previous or {}).get("type", [])
            changes.append(
                EntityChange(
                    self._tenant,
                    EntityChangedV1(
                        entity_id=entity_id,
                        entity_types=list(types),
                        change=touched.change,
                        attributes=sorted(touched.attributes),
                        entity=document.entity if document else None,
                        previous=touched.previous,
                    ),
                    self._correlation_id,
                )
            )
        self._touched.clear()
        return append_changes(self._connection, changes)

    # -- helpers -------------------------------------------------------------------------

    def _lock(self, entity_id: str, *, with_document: bool = False) -> EntityState | None:
        return lock_entities(self._connection, [entity_id], with_documents=with_document).get(
            entity_id
        )

    def _require(self, entity_id: str, *, with_document: bool = False) -> EntityState:
        state = self._lock(entity_id, with_document=with_document)
        if state is None or state.deleted:
            raise NotFoundError(f"entity {entity_id} does not exist")
        return state

    def _record_deletions(self, entity_id: str, name: str, dataset_id: str | None) -> None:
        """Keep in the history that these attribute instances were deleted now (4.5.7)."""
        condition = [attributes.c.entity_id == entity_id, attributes.c.name == name]
        if dataset_id is not None:
            condition.append(attributes.c.dataset_id == dataset_id)
        rows = self._connection.execute(
            select(attributes.c.dataset_id, attributes.c.kind).where(*condition)
        )
        self._append_deletions(
            [deletion_row(entity_id, name, row.dataset_id, row.kind, self._now) for row in rows]
        )

    def _append_deletions(self, deletions: list[InstanceRow]) -> None:
        if deletions:
            self._partitions.ensure(self._schema, {month_start(self._now)})
            append_instances(self._connection, self._schema, deletions)

    def _last_view(self, entity_id: str, state: EntityState) -> dict[str, Any]:
        """The entity with its system members, for the event of its deletion: a deleted
        entity's notification with sysAttrs shows them, and after the deletion neither its
        row nor its attribute rows know them any more."""
        rows = self._connection.execute(
            select(
                attributes.c.name,
                attributes.c.dataset_id,
                attributes.c.created_at,
                attributes.c.modified_at,
            ).where(attributes.c.entity_id == entity_id)
        )
        stamps = {
            (row.name, row.dataset_id): {
                "createdAt": format_datetime(row.created_at),
                "modifiedAt": format_datetime(row.modified_at),
            }
            for row in rows
        }

        def stamped(name: str, instance: Any) -> Any:
            if not isinstance(instance, Mapping):
                return instance
            found = stamps.get((name, instance.get("datasetId", DEFAULT_DATASET)))
            return {**instance, **found} if found else instance

        view: dict[str, Any] = {}
        for name, value in (state.document or {}).items():
            if isinstance(value, list):
                view[name] = [stamped(name, item) for item in value]
            else:
                view[name] = stamped(name, value)
        view["createdAt"] = format_datetime(state.created_at)
        return view

    def _bodies(self, entity_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._connection.execute(
            select(attributes.c.name, attributes.c.dataset_id, attributes.c.body).where(
                attributes.c.entity_id == entity_id
            )
        )
        return {(row.name, row.dataset_id): row.body for row in rows}

    def _apply_types_and_scopes(
        self, entity_id: str, state: EntityState, fragment: Fragment
    ) -> None:
        values: dict[str, Any] = {}
        if fragment.types:
            added = [t for t in fragment.types if t not in state.types]
            if added:
                values["types"] = state.types + added
        if fragment.scopes is not None:
            values["scopes"] = fragment.scopes
        if values:
            self._connection.execute(
                entities.update().where(entities.c.id == entity_id).values(**values)
            )

    def _write_rows(self, entity_id: str, rows: list[AttributeRow]) -> None:
        if not rows:
            return
        keys = [(row.name, row.dataset_id) for row in rows]
        if len(set(keys)) != len(keys):
            raise BadRequestDataError("an attribute instance (name and datasetId) appears twice")
        upsert_attributes(
            self._connection, [(entity_id, row) for row in rows], self._now, only_newer=False
        )
        instances = [instance_row(entity_id, row, self._now) for row in rows]
        self._partitions.ensure(self._schema, {month_start(i.observed_at) for i in instances})
        append_instances(self._connection, self._schema, instances)

    def _note(
        self,
        entity_id: str,
        change: Change,
        names: Iterable[str],
        previous: dict[str, Any] | None = None,
    ) -> None:
        touched = self._touched.get(entity_id)
        if touched is None:
            touched = self._touched[entity_id] = _Touched(change, set(), previous)
        elif touched.change == "deleted" or change in ("created", "replaced"):
            touched.change = change
        touched.attributes.update(names)


def _dataset(instance: Mapping[str, Any]) -> str:
    dataset = instance.get("datasetId", DEFAULT_DATASET)
    if not isinstance(dataset, str) or not dataset:
        raise BadRequestDataError("datasetId must be a non-empty URI string")
    return dataset


def merged_attribute(
    existing: Mapping[str, Any] | None, partial: Mapping[str, Any]
) -> dict[str, Any]:
    """An attribute merged with a partial one: members replaced, nulls removed.

    A partial attribute of another type starts afresh (a Property's ``value`` must not
    linger in what has become a Relationship).
    """
    merged = dict(existing or {})
    if "type" in partial and partial["type"] != merged.get("type"):
        merged = {}
    for member, value in partial.items():
        if value == NGSI_LD_NULL:
            merged.pop(member, None)
        else:
            merged[member] = value
    return merged


def _unique(names: Iterable[str]) -> list[str]:
    found: list[str] = []
    for name in names:
        if name not in found:
            found.append(name)
    return found
