"""The knowledge layer's service facade: the only module other layers may import.

Typed operations for everything the NGSI-LD API needs, on expanded NGSI-LD JSON (attribute
names, types and vocab values as IRIs; the API expands and compacts with the request's
``@context``). Every write runs in one database transaction that also writes its
``knowledge.entities.changed.v1`` events to the outbox (published after the commit by the
knowledge layer's relay). Every read filters in SQL.

Tenants: ``tenant=None`` (or ``""``) is the NGSI-LD default tenant. A write creates the
tenant on first use; a read of a tenant never written raises
:class:`NonexistentTenantError`.

Errors are :class:`KnowledgeError` subclasses carrying ``problem_type``, ``title`` and
``status`` for ProblemDetails; query-parameter parsing raises :class:`InvalidQueryError`.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import DataError

from cityos_knowledge.context import discovery, partial_update
from cityos_knowledge.context.batch import BatchError, BatchResult, run_batch
from cityos_knowledge.context.discovery import (
    AttributeSummary,
    EntityTypeInfo,
    EntityTypeSummary,
    TypeAttribute,
)
from cityos_knowledge.context.reads import CORE_MEMBERS, Projection, document_column, retrieve
from cityos_knowledge.context.writes import ContextWriter, NotUpdated, UpdateResult
from cityos_knowledge.entities.model import (
    NGSI_LD_NULL,
    parse_entity,
    parse_fragment,
    validate_entity_id,
)
from cityos_knowledge.errors import (
    AlreadyExistsError,
    BadRequestDataError,
    InvalidRequestError,
    KnowledgeError,
    NonexistentTenantError,
    NotAvailableOnThisDatabaseError,
    NotFoundError,
    OperationNotSupportedError,
    TooManyResultsError,
)
from cityos_knowledge.query import (
    INVALID_REGULAR_EXPRESSION,
    EntityQuery,
    InvalidQueryError,
    build_entity_filter,
    count_entities,
    entity_document,
    entity_ordering,
    parse_entity_query,
    select_entities,
)
from cityos_knowledge.query.authorization import (
    AccessDeniedError,
    DataAccess,
    GuardedWriter,
    data_access,
    retrieve_visible,
    visible_groups,
)
from cityos_knowledge.query.shapes import StatementCache, run_pooled_query
from cityos_knowledge.settings import KnowledgeSettings
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import entities
from cityos_knowledge.store.tenants import validate_tenant
from cityos_knowledge.temporal import aggregation, analytics
from cityos_knowledge.temporal import reads as temporal_reads
from cityos_knowledge.temporal.analytics import CounterStats
from cityos_knowledge.temporal.params import (
    AGGREGATION_METHODS,
    TemporalQuery,
    parse_temporal_query,
)
from cityos_knowledge.temporal.writes import TemporalWriter
from cityos_support.security.policy import DataScope

__all__ = [
    "AGGREGATION_METHODS",
    "NGSI_LD_NULL",
    "AccessDeniedError",
    "AlreadyExistsError",
    "AttributeSummary",
    "BadRequestDataError",
    "BatchError",
    "BatchResult",
    "CounterStats",
    "DataAccess",
    "DataScope",
    "EntityPage",
    "EntityQuery",
    "EntityTypeInfo",
    "EntityTypeSummary",
    "InvalidQueryError",
    "InvalidRequestError",
    "KnowledgeError",
    "KnowledgeService",
    "NonexistentTenantError",
    "NotAvailableOnThisDatabaseError",
    "NotFoundError",
    "NotUpdated",
    "OperationNotSupportedError",
    "TemporalQuery",
    "TooManyResultsError",
    "TypeAttribute",
    "UpdateResult",
    "parse_entity_query",
    "parse_temporal_query",
]

T = TypeVar("T")
Expander = Callable[[str], str]
Representation = Literal["normalized", "temporalValues"]


def _identity(term: str) -> str:
    return term


@dataclass(frozen=True, slots=True)
class EntityPage:
    """A page of entities (context or temporal) and, when asked, how many match in all."""

    entities: list[dict[str, Any]]
    count: int | None = None


class KnowledgeService:
    """NGSI-LD context and temporal operations on one knowledge database."""

    def __init__(self, store: KnowledgeStore) -> None:
        self._store = store
        #: The data scope every call of this view applies (see :meth:`scoped`).
        self._scope: DataScope | None = None
        #: Compiled context queries per query shape (shared by scoped views).
        self._statements = StatementCache(store.engine.dialect)
        #: The partial updates' group commit (shared by scoped views, ADR 0052).
        self._partial_updates = partial_update.PartialUpdates(
            store.engine, store.partitions, linger=store.settings.knowledge_patch_linger_seconds
        )

    @classmethod
    def from_url(
        cls, database_url: str, settings: KnowledgeSettings | None = None, *, pool_size: int = 5
    ) -> KnowledgeService:
        """A service on its own connection pool (the caller closes it)."""
        return cls(KnowledgeStore.from_url(database_url, settings, pool_size=pool_size))

    def close(self) -> None:
        self._partial_updates.close()
        self._store.close()

    @property
    def history_layout(self) -> str:
        """How history is kept on this database (as shown in ``/ready``)."""
        return self._store.layout.detail

    # -- transactions --------------------------------------------------------------------

    def scoped(self, scope: DataScope | None) -> KnowledgeService:
        """This facade as one subject sees it: every call applies ``scope`` (level 1).

        An unrestricted scope gives this facade itself. The view shares the store.
        """
        if self._access(scope) is None:
            return self
        view = copy.copy(self)
        view._scope = scope
        return view

    def data_access(self, scope: DataScope) -> DataAccess | None:
        """``scope`` with its names expanded as the store keeps them; None if unrestricted.

        For a caller that must apply a scope to entities it did not read through this
        facade (the notifier, to the entities of change events).
        """
        return self._access(scope)

    def _access(self, scope: DataScope | None) -> DataAccess | None:
        """A subject's data scope in SQL terms; None when it restricts nothing."""
        return data_access(
            scope if scope is not None else self._scope,
            vocabulary=self._store.settings.knowledge_default_vocabulary,
        )

    @contextmanager
    def _writing(
        self,
        tenant: str | None,
        writer: type[ContextWriter] = ContextWriter,
        *,
        access: DataAccess | None = None,
    ) -> Iterator[Any]:
        """One transaction on the tenant (created if new); events written before commit.

        With ``access``, a tenant outside it is refused before it is created, and the writer
        refuses entities whose types may not be written (403).
        """
        name = validate_tenant(tenant)
        if access is not None:
            access.require_tenant(name)
        schema = self._store.tenants.ensure(name)
        with _user_errors(), self._store.engine.begin() as raw:
            raw.exec_driver_sql("SET LOCAL jit = off")  # short statements (see ingest.apply)
            instance = writer(
                bind_schema(raw, schema),
                schema=schema,
                tenant=name,
                now=datetime.now(UTC),
                partitions=self._store.partitions,
            )
            if access is not None and access.writable is not None:
                yield GuardedWriter(instance, access)
            else:
                yield instance
            instance.finish()

    @contextmanager
    def _reading(
        self, tenant: str | None, access: DataAccess | None = None
    ) -> Iterator[Connection]:
        """A connection on an existing tenant (NonexistentTenant otherwise; 403 outside
        ``access``)."""
        schema = self._reading_schema(tenant, access)
        with _user_errors(), self._store.engine.connect() as raw:
            yield bind_schema(raw, schema)

    def _reading_schema(self, tenant: str | None, access: DataAccess | None = None) -> str:
        """The schema of an existing tenant (NonexistentTenant otherwise; 403 outside
        ``access``)."""
        if access is not None:
            access.require_tenant(validate_tenant(tenant))
        return self._store.tenants.lookup(tenant)

    # -- context writes ------------------------------------------------------------------

    def create_entity(
        self, tenant: str | None, entity: Mapping[str, Any], *, scope: DataScope | None = None
    ) -> str:
        """Create an entity (AlreadyExists when its id is taken); returns its id."""
        parsed = parse_entity(entity)
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.create(parsed)
        return parsed.id

    def replace_entity(
        self,
        tenant: str | None,
        entity_id: str,
        entity: Mapping[str, Any],
        *,
        scope: DataScope | None = None,
    ) -> None:
        """Replace an entity's types, scopes and attributes (PUT /entities/{id})."""
        parsed = parse_entity({**entity, "id": validate_entity_id(entity_id)})
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.replace(parsed)

    def merge_entity(
        self,
        tenant: str | None,
        entity_id: str,
        fragment: Mapping[str, Any],
        *,
        scope: DataScope | None = None,
    ) -> None:
        """Merge-patch an entity (PATCH /entities/{id}); ``urn:ngsi-ld:null`` deletes."""
        parsed = parse_fragment(fragment, allow_null=True, validate=False)
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.merge(validate_entity_id(entity_id), parsed)

    def append_attributes(
        self,
        tenant: str | None,
        entity_id: str,
        fragment: Mapping[str, Any],
        *,
        no_overwrite: bool = False,
        entity_type: str | None = None,
        scope: DataScope | None = None,
    ) -> UpdateResult:
        """Append attributes (POST /entities/{id}/attrs, ``options=noOverwrite``).

        ``entity_type`` (here and in the other attribute writes) is the ``type`` selector:
        an entity without that (expanded) type is not found and nothing is written.
        """
        parsed = parse_fragment(fragment)
        writer: ContextWriter
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.require_type(validate_entity_id(entity_id), entity_type)
            result = writer.append(validate_entity_id(entity_id), parsed, no_overwrite=no_overwrite)
        return result

    def update_attributes(
        self,
        tenant: str | None,
        entity_id: str,
        fragment: Mapping[str, Any],
        *,
        entity_type: str | None = None,
        scope: DataScope | None = None,
    ) -> UpdateResult:
        """Update existing attributes only (PATCH /entities/{id}/attrs); types are added."""
        parsed = parse_fragment(fragment, allow_null=True)
        writer: ContextWriter
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.require_type(validate_entity_id(entity_id), entity_type)
            result = writer.update(validate_entity_id(entity_id), parsed)
        return result

    def patch_attribute(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        partial: Mapping[str, Any],
        *,
        entity_type: str | None = None,
        scope: DataScope | None = None,
    ) -> None:
        """Partial update of one attribute (PATCH /entities/{id}/attrs/{attrId})."""
        access = self._access(scope)
        update = self._fast_partial_update(
            tenant, entity_id, name, partial, entity_type, access, may_block=True
        )
        if update is not None:
            # The API's hot write: a few set-based statements per batch of concurrent
            # updates, one commit for the batch; returns once this update is committed.
            self._partial_updates.submit(update)
            return
        with self._writing(tenant, access=access) as writer:
            writer.require_type(validate_entity_id(entity_id), entity_type)
            writer.patch_attribute(validate_entity_id(entity_id), name, partial)

    async def patch_attribute_async(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        partial: Mapping[str, Any],
        *,
        entity_type: str | None = None,
        scope: DataScope | None = None,
    ) -> None:
        """:meth:`patch_attribute` for a caller on an event loop, which it never blocks.

        A fast-path update is queued from the loop and applied by the group commit's own
        thread; the caller resumes once it is committed, with no thread-pool hop (ADR 0055).
        What could touch the database from the caller's thread (the general path, a tenant
        this process has not written yet) runs in a worker thread instead.
        """
        update = self._fast_partial_update(
            tenant, entity_id, name, partial, entity_type, self._access(scope), may_block=False
        )
        if update is not None:
            await self._partial_updates.submit_async(update)
            return
        await asyncio.to_thread(
            self.patch_attribute,
            tenant,
            entity_id,
            name,
            partial,
            entity_type=entity_type,
            scope=scope,
        )

    def _fast_partial_update(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        partial: Mapping[str, Any],
        entity_type: str | None,
        access: DataAccess | None,
        *,
        may_block: bool,
    ) -> partial_update.PartialUpdate | None:
        """The update for the group commit (ADR 0052), or None for the general path.

        Without ``may_block``, also None when the tenant's schema is not known yet (finding
        or creating it is I/O).
        """
        if not isinstance(partial, Mapping):
            raise BadRequestDataError("a partial attribute must be a JSON object")
        # The fast path writes without the guarded writer: only for subjects who may write
        # every type (their tenant is still checked).
        if (access is not None and access.writable is not None) or not (
            partial_update.takes_fast_path(partial)
        ):
            return None
        tenant_name = validate_tenant(tenant)
        if access is not None:
            access.require_tenant(tenant_name)
        tenants = self._store.tenants
        schema = tenants.ensure(tenant_name) if may_block else tenants.known(tenant_name)
        if schema is None:
            return None
        return partial_update.PartialUpdate.of(
            schema=schema,
            tenant=tenant_name,
            entity_id=validate_entity_id(entity_id),
            name=name,
            partial=partial,
            entity_type=entity_type,
        )

    def replace_attribute(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        attribute: Any,
        *,
        scope: DataScope | None = None,
    ) -> None:
        """Replace one attribute (PUT /entities/{id}/attrs/{attrId})."""
        parsed = parse_fragment({name: attribute}, entity_members=False)
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.replace_attribute(validate_entity_id(entity_id), name, parsed.attributes)

    def delete_attribute(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
        entity_type: str | None = None,
        scope: DataScope | None = None,
    ) -> None:
        """Delete an attribute instance, or all with ``delete_all``."""
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.require_type(validate_entity_id(entity_id), entity_type)
            writer.delete_attribute(
                validate_entity_id(entity_id), name, dataset_id=dataset_id, delete_all=delete_all
            )

    def delete_scope(
        self,
        tenant: str | None,
        entity_id: str,
        *,
        entity_type: str | None = None,
        scope: DataScope | None = None,
    ) -> None:
        """Remove an entity's scope (DELETE /entities/{id}/attrs/scope); NotFound if none."""
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.require_type(validate_entity_id(entity_id), entity_type)
            writer.delete_scope(validate_entity_id(entity_id))

    def delete_entity(
        self, tenant: str | None, entity_id: str, *, scope: DataScope | None = None
    ) -> None:
        """Delete an entity from the context (its history stays for the temporal API)."""
        with self._writing(tenant, access=self._access(scope)) as writer:
            writer.delete(validate_entity_id(entity_id))

    # -- batch operations ----------------------------------------------------------------

    def _batch(
        self,
        tenant: str | None,
        items: Sequence[Any],
        step: Callable[[ContextWriter, Any], str],
        scope: DataScope | None = None,
    ) -> BatchResult:
        with self._writing(tenant, access=self._access(scope)) as writer:
            return run_batch(writer.connection, writer, items, step)

    def batch_create(
        self,
        tenant: str | None,
        items: Sequence[Mapping[str, Any]],
        *,
        scope: DataScope | None = None,
    ) -> BatchResult:
        """POST /entityOperations/create."""

        created: list[str] = []

        def step(writer: ContextWriter, item: Mapping[str, Any]) -> str:
            entity = parse_entity(item)
            writer.create(entity)
            created.append(entity.id)
            return entity.id

        result = self._batch(tenant, items, step, scope)
        result.created = [i for i in created if i in result.success]
        return result

    def batch_upsert(
        self,
        tenant: str | None,
        items: Sequence[Mapping[str, Any]],
        *,
        replace: bool = True,
        scope: DataScope | None = None,
    ) -> BatchResult:
        """POST /entityOperations/upsert (``options=replace`` default, or ``update``)."""

        created: list[str] = []

        def step(writer: ContextWriter, item: Mapping[str, Any]) -> str:
            entity = parse_entity(item)
            try:
                writer.create(entity)
            except AlreadyExistsError:
                if replace:
                    writer.replace(entity)
                else:
                    writer.append(entity.id, entity, no_overwrite=False)
            else:
                created.append(entity.id)
            return entity.id

        result = self._batch(tenant, items, step, scope)
        result.created = [i for i in created if i in result.success]
        return result

    def batch_update(
        self,
        tenant: str | None,
        items: Sequence[Mapping[str, Any]],
        *,
        no_overwrite: bool = False,
        scope: DataScope | None = None,
    ) -> BatchResult:
        """POST /entityOperations/update: append attributes to existing entities."""

        def step(writer: ContextWriter, item: Mapping[str, Any]) -> str:
            entity_id = validate_entity_id(item.get("id"))
            writer.append(entity_id, parse_fragment(item), no_overwrite=no_overwrite)
            return entity_id

        return self._batch(tenant, items, step, scope)

    def batch_merge(
        self,
        tenant: str | None,
        items: Sequence[Mapping[str, Any]],
        *,
        scope: DataScope | None = None,
    ) -> BatchResult:
        """POST /entityOperations/merge."""

        def step(writer: ContextWriter, item: Mapping[str, Any]) -> str:
            entity_id = validate_entity_id(item.get("id"))
            writer.merge(entity_id, parse_fragment(item, allow_null=True, validate=False))
            return entity_id

        return self._batch(tenant, items, step, scope)

    def batch_delete(
        self, tenant: str | None, entity_ids: Sequence[str], *, scope: DataScope | None = None
    ) -> BatchResult:
        """POST /entityOperations/delete."""

        def step(writer: ContextWriter, entity_id: str) -> str:
            writer.delete(validate_entity_id(entity_id))
            return entity_id

        return self._batch(tenant, entity_ids, step, scope)

    def purge_entities(
        self,
        tenant: str | None,
        query: EntityQuery,
        *,
        expand: Expander = _identity,
        keep: Sequence[str] | None = None,
        drop: Sequence[str] | None = None,
        scope: DataScope | None = None,
    ) -> int:
        """Delete every entity the query selects (context delete); returns how many.

        With ``keep`` or ``drop`` (attribute names, expanded like the query's) the entities
        stay and only their attributes go: those in ``drop``, or all but those in ``keep``.
        """
        if keep is not None and drop is not None:
            raise BadRequestDataError("purge takes keep or drop, not both")
        kept = None if keep is None else frozenset(expand(name) for name in keep)
        dropped = None if drop is None else frozenset(expand(name) for name in drop)
        condition = build_entity_filter(query, expand=expand)
        access = self._access(scope)
        if access is not None:
            # Only what the subject can see is purged; what it cannot stays untouched.
            condition = condition & access.entity_condition(query, expand=expand)
        with self._writing(tenant, access=access) as writer:
            ids = list(
                writer.connection.execute(
                    select(entities.c.id)
                    .where(condition)
                    .order_by(*entity_ordering(query, expand=expand))
                ).scalars()
            )
            for entity_id in ids:
                if kept is None and dropped is None:
                    writer.delete(entity_id)
                else:
                    writer.prune(entity_id, keep=kept, drop=dropped)
        return len(ids)

    # -- context reads -------------------------------------------------------------------

    def retrieve_entity(
        self,
        tenant: str | None,
        entity_id: str,
        *,
        attrs: Sequence[str] | None = None,
        pick: Sequence[str] = (),
        omit: Sequence[str] = (),
        sys_attrs: bool = False,
        scope: DataScope | None = None,
    ) -> dict[str, Any]:
        """One entity (NotFound when absent or not readable); names are expanded IRIs."""
        projection = Projection(attrs, pick, omit, sys_attrs)
        access = self._access(scope)
        with self._reading(tenant, access) as connection:
            if access is None or not access.filters_reads:
                document = retrieve(connection, validate_entity_id(entity_id), projection)
            else:
                document = retrieve_visible(
                    connection, validate_entity_id(entity_id), projection, access
                )
        if document is None:
            raise NotFoundError(f"entity {entity_id} does not exist")
        return document

    def query_entities(
        self,
        tenant: str | None,
        query: EntityQuery,
        *,
        expand: Expander = _identity,
        sys_attrs: bool = False,
        scope: DataScope | None = None,
    ) -> EntityPage:
        """Query Entities: filter, order, page and project in SQL (``cityos_knowledge.query``).

        ``expand`` turns the names the user wrote (attributes, types, geoproperty) into the
        stored IRIs; the default keeps them as written. ``sys_attrs`` adds createdAt and
        modifiedAt to entities and attributes.
        """
        access = self._access(scope)
        if access is None or not access.filters_reads:
            return self._query_page(tenant, access, query, expand, sys_attrs)
        # A restricted scope is built per request (its conditions are the caller's), so it
        # does not take the per-shape statement cache of the unrestricted path.
        condition = access.entity_condition(query, expand=expand)
        document = access.document(self._page_document(query, expand, sys_attrs))
        statement = select_entities(
            query, expand=expand, columns=[document], with_total=query.count
        ).where(condition)
        with self._reading(tenant, access) as connection, connection.begin():
            rows = connection.execute(statement).all()
            total = None
            if query.count:
                # The page carries the total; an empty page (offset past the end) cannot.
                counting = count_entities(query, expand=expand).where(condition)
                total = int(rows[0][1]) if rows else int(connection.execute(counting).scalar_one())
        return EntityPage([row[0] for row in rows], total)

    def _page_document(self, query: EntityQuery, expand: Expander, sys_attrs: bool) -> Any:
        """The column that renders each entity of a query page."""
        if sys_attrs:
            return document_column(self._projection(query, expand, sys_attrs))
        return entity_document(query, expand=expand)

    def _query_page(
        self,
        tenant: str | None,
        access: DataAccess | None,
        query: EntityQuery,
        expand: Expander,
        sys_attrs: bool,
    ) -> EntityPage:
        """An unrestricted Query Entities page: SQL compiled once per query shape, run in
        autocommit (one statement, its own snapshot) with the connection's serial plans."""

        def page(query: EntityQuery, expand: Expander) -> Any:
            document = self._page_document(query, expand, sys_attrs)
            return select_entities(query, expand=expand, columns=[document], with_total=query.count)

        def counting(query: EntityQuery, expand: Expander) -> Any:
            return count_entities(query, expand=expand)

        schema = self._reading_schema(tenant, access)
        engine, statements = self._store.engine, self._statements
        with _user_errors():  # each statement on a pooled connection of its own (autocommit)
            rows = run_pooled_query(
                engine, schema, statements, ("page", sys_attrs), query, expand, page
            )
            total = None
            if query.count and rows:
                total = int(rows[0][1])
            elif query.count:  # an empty page (offset past the end) cannot carry the total
                counted = run_pooled_query(
                    engine, schema, statements, "count", query, expand, counting
                )
                total = int(counted[0][0])
        return EntityPage([row[0] for row in rows], total)

    @staticmethod
    def _projection(query: EntityQuery, expand: Expander, sys_attrs: bool) -> Projection:
        def member(name: str) -> str:
            return name if name in CORE_MEMBERS else expand(name)

        return Projection(
            attrs=[expand(name) for name in query.attrs] if query.attrs else None,
            pick=[member(name) for name in query.pick],
            omit=[member(name) for name in query.omit],
            sys_attrs=sys_attrs,
        )

    def entity_types(
        self, tenant: str | None, *, scope: DataScope | None = None
    ) -> list[EntityTypeSummary]:
        """Every entity type of live entities, with their attribute names."""
        access = self._access(scope)
        with self._reading(tenant, access) as connection:
            return discovery.entity_types(connection, access=access)

    def entity_type(
        self, tenant: str | None, type_name: str, *, scope: DataScope | None = None
    ) -> EntityTypeInfo:
        """Details of one entity type (NotFound when no live entity has it)."""
        access = self._access(scope)
        with self._reading(tenant, access) as connection:
            info = discovery.entity_type(connection, type_name, access=access)
        if info is None:
            raise NotFoundError(f"no entity has type {type_name}")
        return info

    def attributes(
        self, tenant: str | None, *, scope: DataScope | None = None
    ) -> list[AttributeSummary]:
        """Every attribute name of live entities, with counts, attribute and entity types."""
        access = self._access(scope)
        with self._reading(tenant, access) as connection:
            return discovery.attribute_summaries(connection, access=access)

    def attribute(
        self, tenant: str | None, name: str, *, scope: DataScope | None = None
    ) -> AttributeSummary:
        """Details of one attribute (NotFound when no live entity has it)."""
        access = self._access(scope)
        with self._reading(tenant, access) as connection:
            found = discovery.attribute_summaries(connection, name, access=access)
        if not found:
            raise NotFoundError(f"no entity has attribute {name}")
        return found[0]

    # -- temporal ------------------------------------------------------------------------

    def retrieve_temporal(
        self,
        tenant: str | None,
        entity_id: str,
        temporal: TemporalQuery,
        *,
        attrs: Sequence[str] | None = None,
        representation: Representation = "normalized",
        sys_attrs: bool = False,
        scope: DataScope | None = None,
    ) -> dict[str, Any]:
        """An entity's temporal evolution (normalized, temporalValues or, with
        ``aggrMethods``, aggregatedValues); NotFound when the entity never existed."""
        entity_id = validate_entity_id(entity_id)
        access = self._access(scope)
        with self._reading(tenant, access) as connection:
            if access is not None and not access.is_readable(connection, entity_id):
                raise NotFoundError(f"entity {entity_id} does not exist")
            page = self._temporal(
                connection, [entity_id], attrs, temporal, representation, sys_attrs, access
            )
        if not page:
            raise NotFoundError(f"entity {entity_id} does not exist")
        return page[0]

    def query_temporal(
        self,
        tenant: str | None,
        query: EntityQuery,
        temporal: TemporalQuery,
        *,
        expand: Expander = _identity,
        representation: Representation = "normalized",
        sys_attrs: bool = False,
        scope: DataScope | None = None,
    ) -> EntityPage:
        """Query Temporal Evolution of Entities: entities chosen by ``query`` (on their
        current state), each with its instances in the ``temporal`` window."""
        attrs = [expand(name) for name in query.attrs] if query.attrs else None
        access = self._access(scope)
        chosen = select_entities(query, expand=expand, columns=[entities.c.id])
        counting = count_entities(query, expand=expand)
        if access is not None and access.filters_reads:
            visible = access.entity_condition(query, expand=expand)
            chosen, counting = chosen.where(visible), counting.where(visible)
        with self._reading(tenant, access) as connection:
            ids = list(connection.execute(chosen).scalars())
            found = self._temporal(
                connection, ids, attrs, temporal, representation, sys_attrs, access
            )
            total = None
            if query.count:
                total = int(connection.execute(counting).scalar_one())
        return EntityPage(found, total)

    def _temporal(
        self,
        connection: Connection,
        ids: list[str],
        attrs: Sequence[str] | None,
        temporal: TemporalQuery,
        representation: Representation,
        sys_attrs: bool,
        access: DataAccess | None = None,
    ) -> list[dict[str, Any]]:
        types = temporal_reads.entity_types(connection, ids)
        if not types:
            return []
        values: dict[str, dict[str, Any]] = {}
        # Hidden attributes are never read: entities are grouped by what they may show.
        for group, names in visible_groups(access, types, ids, attrs):
            values.update(
                self._temporal_values(connection, group, names, temporal, representation, sys_attrs)
            )
        return [
            {"id": entity_id, "type": types[entity_id], **values.get(entity_id, {})}
            for entity_id in ids
            if entity_id in types
        ]

    def _temporal_values(
        self,
        connection: Connection,
        ids: list[str],
        attrs: Sequence[str] | None,
        temporal: TemporalQuery,
        representation: Representation,
        sys_attrs: bool,
    ) -> dict[str, dict[str, Any]]:
        values: dict[str, dict[str, Any]]
        if temporal.aggregated:
            view = aggregation.rollup_answerable(
                temporal, timescaledb=self._store.layout.timescaledb
            )
            schema = connection.get_execution_options()["schema_translate_map"][None]
            values = (
                aggregation.rollup_values(connection, view, schema, ids, attrs, temporal)
                if view
                else aggregation.aggregated_values(connection, ids, attrs, temporal)
            )
        else:
            rows = temporal_reads.load_instances(connection, ids, attrs, temporal)
            if representation == "temporalValues":
                values = temporal_reads.temporal_values(rows)
            else:
                values = temporal_reads.normalized(rows, sys_attrs=sys_attrs)
        return values

    def create_temporal_entity(
        self, tenant: str | None, entity: Mapping[str, Any], *, scope: DataScope | None = None
    ) -> bool:
        """POST /temporal/entities: create or add instances; True when it was created."""
        entity_id = validate_entity_id(entity.get("id"))
        parsed = parse_entity(_latest_only(entity))
        with self._writing(tenant, TemporalWriter, access=self._access(scope)) as writer:
            return bool(
                writer.append_history(
                    entity_id, parsed.types, _instances(entity), create=True, scopes=parsed.scopes
                )
            )

    def append_temporal_attributes(
        self,
        tenant: str | None,
        entity_id: str,
        fragment: Mapping[str, Any],
        *,
        scope: DataScope | None = None,
    ) -> None:
        """POST /temporal/entities/{id}/attrs: append instances to an existing entity."""
        with self._writing(tenant, TemporalWriter, access=self._access(scope)) as writer:
            writer.append_history(
                validate_entity_id(entity_id), None, _instances(fragment), create=False
            )

    def modify_attribute_instance(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        instance_id: str,
        partial: Mapping[str, Any],
        *,
        scope: DataScope | None = None,
    ) -> None:
        """PATCH /temporal/entities/{id}/attrs/{attrId}/{instanceId}."""
        with self._writing(tenant, TemporalWriter, access=self._access(scope)) as writer:
            writer.modify_instance(validate_entity_id(entity_id), name, instance_id, partial)

    def delete_attribute_instance(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        instance_id: str,
        *,
        scope: DataScope | None = None,
    ) -> None:
        """DELETE /temporal/entities/{id}/attrs/{attrId}/{instanceId}."""
        with self._writing(tenant, TemporalWriter, access=self._access(scope)) as writer:
            writer.delete_instance(validate_entity_id(entity_id), name, instance_id)

    def delete_temporal_attribute(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
        scope: DataScope | None = None,
    ) -> None:
        """DELETE /temporal/entities/{id}/attrs/{attrId}: an attribute's history."""
        with self._writing(tenant, TemporalWriter, access=self._access(scope)) as writer:
            writer.delete_attribute_history(
                validate_entity_id(entity_id), name, dataset_id=dataset_id, delete_all=delete_all
            )

    def delete_temporal_entity(
        self, tenant: str | None, entity_id: str, *, scope: DataScope | None = None
    ) -> None:
        """DELETE /temporal/entities/{id}: the entity and its whole history."""
        with self._writing(tenant, TemporalWriter, access=self._access(scope)) as writer:
            writer.purge(validate_entity_id(entity_id))

    # -- analytics (TimescaleDB toolkit) -------------------------------------------------

    @contextmanager
    def _analytics(self, tenant: str | None, what: str) -> Iterator[Connection]:
        analytics.require_toolkit(self._store.layout, what)
        with self._reading(tenant) as connection:
            yield connection

    def time_weighted_average(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        temporal: TemporalQuery,
        *,
        dataset_id: str | None = None,
        method: str = "Linear",
    ) -> float | None:
        """Time-weighted average of a numeric attribute (toolkit ``time_weight``)."""
        with self._analytics(tenant, "a time-weighted average") as connection:
            return analytics.time_weighted_average(
                connection, entity_id, name, dataset_id, temporal, method=method
            )

    def percentiles(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        temporal: TemporalQuery,
        fractions: Sequence[float],
        *,
        dataset_id: str | None = None,
    ) -> dict[float, float | None]:
        """Approximate percentiles (toolkit ``percentile_agg``)."""
        with self._analytics(tenant, "percentiles") as connection:
            return analytics.percentiles(
                connection, entity_id, name, dataset_id, temporal, fractions
            )

    def counter(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        temporal: TemporalQuery,
        *,
        dataset_id: str | None = None,
    ) -> CounterStats:
        """Delta and rate of a monotonic counter, resets handled (toolkit ``counter_agg``)."""
        with self._analytics(tenant, "counter deltas and rates") as connection:
            return analytics.counter(connection, entity_id, name, dataset_id, temporal)

    def downsample(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        temporal: TemporalQuery,
        points: int,
        *,
        dataset_id: str | None = None,
    ) -> list[tuple[datetime, float]]:
        """LTTB downsampling to ``points`` points (toolkit ``lttb``)."""
        with self._analytics(tenant, "LTTB downsampling") as connection:
            return analytics.downsample(connection, entity_id, name, dataset_id, temporal, points)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn what PostgreSQL rejects in user input (an invalid regex) into BadRequestData."""
    try:
        yield
    except DataError as exc:
        if getattr(exc.orig, "pgcode", None) == INVALID_REGULAR_EXPRESSION:
            raise BadRequestDataError(f"invalid regular expression: {exc.orig}") from exc
        raise


def _instances(document: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The attribute instances of a temporal entity or fragment (each attribute a list)."""
    if not isinstance(document, Mapping):
        raise BadRequestDataError("a temporal entity must be a JSON object")
    found: dict[str, list[dict[str, Any]]] = {}
    for name, value in document.items():
        if name in CORE_MEMBERS or name == "@context":
            continue
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, dict) for item in items):
            raise BadRequestDataError(f"attribute {name}: instances must be JSON objects")
        found[name] = items
    return found


def _latest_only(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity members needed to validate id and type (attributes left out)."""
    return {key: entity[key] for key in ("id", "type", "scope") if key in entity}
