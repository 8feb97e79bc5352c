"""Level-1 authorization (data access) as SQL: what a subject's ``DataScope`` lets it touch.

The support layer folds a subject's roles into a
:class:`~cityos_support.security.policy.DataScope` (tenants, readable and writable entity
types, visible attributes per type). :func:`data_access` turns it into a
:class:`DataAccess` in the store's own terms (types and attribute names expanded to IRIs the
way the ingest expands short names), and the facade adds its conditions to the statements it
runs, so that what a subject may not see is never read:

- **tenants** — a tenant the scope does not list is refused (:class:`AccessDeniedError`,
  403) before any schema is touched;
- **reads** — an entity is visible when *one* of its types is readable
  (``entities.types && :readable``, GIN-indexed); a query that filters or orders on an
  attribute the entity's types hide does not match that entity (so ``q`` cannot probe
  hidden values); hidden attributes are removed from the returned JSON in SQL
  (:meth:`DataAccess.document`), from history rows by name (:meth:`DataAccess.visible_names`)
  and from discovery (:meth:`DataAccess.attribute_visible`);
- **writes** — an entity may be written only when *every* one of its types, before and after
  the write, is writable (:class:`GuardedWriter`); otherwise the write is refused with 403
  and nothing of it is committed.

``data_access`` returns ``None`` for a scope that restricts nothing (development mode,
platform administrators): the facade then runs exactly the statements it runs without
authorization.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import (
    Connection,
    Text,
    and_,
    any_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.context.reads import Projection, document_column
from cityos_knowledge.errors import KnowledgeError
from cityos_knowledge.ingest.terms import expand_term
from cityos_knowledge.query.params import EntityQuery
from cityos_knowledge.store.tables import LIVE_ENTITY, entities
from cityos_support.security.policy import DataScope

Condition = ColumnElement[bool]

#: Entity members that are not attributes: never hidden by an attribute restriction.
CORE_MEMBERS = ("id", "type", "scope", "createdAt", "modifiedAt", "deletedAt", "@context")


class AccessDeniedError(KnowledgeError):
    """The subject may not use this tenant, or may not write entities of these types."""

    problem_type: ClassVar[str] = "https://uri.etsi.org/ngsi-ld/errors/Forbidden"
    title: ClassVar[str] = "Forbidden"
    status: ClassVar[int] = 403


def _text_array(values: Iterable[str]) -> ColumnElement[Any]:
    return literal(sorted(values), ARRAY(Text))


@dataclass(frozen=True, eq=False)
class DataAccess:
    """A data scope in the store's terms (expanded IRIs), ready to be added to SQL.

    ``None`` for ``tenants``, ``readable`` or ``writable`` means "all";
    ``restricted`` maps a readable entity type to the only attributes visible on it.
    Instances are shared (:func:`data_access` keeps the recent ones), so the SQL they build
    for documents is built once per scope, not once per request.
    """

    tenants: frozenset[str] | None
    readable: frozenset[str] | None
    writable: frozenset[str] | None
    restricted: Mapping[str, frozenset[str]] = field(default_factory=dict)

    # -- tenants and writes ----------------------------------------------------------------

    def require_tenant(self, tenant: str) -> None:
        """Refuse (403) a tenant the subject has no access to."""
        if self.tenants is not None and tenant not in self.tenants:
            raise AccessDeniedError(f"no access to tenant {tenant}")

    def may_write(self, types: Collection[str]) -> bool:
        """Whether an entity with ``types`` may be written: every type must be writable."""
        return self.writable is None or set(types) <= self.writable

    def require_writable(self, entity_id: str, types: Collection[str]) -> None:
        if not self.may_write(types):
            refused = sorted(set(types) - (self.writable or frozenset()))
            raise AccessDeniedError(
                f"entity {entity_id}: writing entities of type {', '.join(refused)} "
                "is not granted to this subject"
            )

    # -- reads -----------------------------------------------------------------------------

    @property
    def filters_reads(self) -> bool:
        """Whether reads need extra SQL (a type condition or an attribute projection)."""
        return self.readable is not None or bool(self.restricted)

    def readable_entities(self, types: ColumnElement[Any] = entities.c.types) -> Condition:
        """The entity has a readable type (``true()`` when every type is readable)."""
        if self.readable is None:
            return true()
        if not self.readable:
            return false()
        return types.bool_op("&&")(_text_array(self.readable))

    def _unrestricted(self, types: ColumnElement[Any]) -> Condition:
        """The entity has a readable type whose attributes are all visible."""
        if not self.restricted:
            return self.readable_entities(types)
        limited = _text_array(self.restricted)
        if self.readable is None:
            return not_(types.bool_op("<@")(limited))
        free = self.readable - set(self.restricted)
        return types.bool_op("&&")(_text_array(free)) if free else false()

    def attribute_visible(
        self, name: ColumnElement[Any], types: ColumnElement[Any] = entities.c.types
    ) -> Condition:
        """The attribute ``name`` is visible on an entity with ``types`` (both SQL)."""
        if not self.restricted:
            return true()
        allowed = literal(
            {entity_type: sorted(names) for entity_type, names in self.restricted.items()}, JSONB
        )
        entity_type = func.unnest(types).table_valued("name").render_derived("visible_type")
        by_type = exists(
            select(literal(1))
            .select_from(entity_type)
            .where(allowed.op("->")(entity_type.c.name).op("?")(name))
        )
        return or_(self._unrestricted(types), by_type)

    def _name_visible(self, name: str) -> Condition:
        """Like :meth:`attribute_visible` for a name known now (an index-friendly ``&&``)."""
        if not self.restricted or name in CORE_MEMBERS:
            return true()
        allowing = [t for t, names in self.restricted.items() if name in names]
        if not allowing:
            return self._unrestricted(entities.c.types)
        return or_(
            self._unrestricted(entities.c.types),
            entities.c.types.bool_op("&&")(_text_array(allowing)),
        )

    def entity_condition(
        self, query: EntityQuery | None = None, *, expand: Callable[[str], str] = str
    ) -> Condition:
        """Readable entities on which every attribute ``query`` looks at is visible."""
        clauses = [self.readable_entities()]
        if query is not None and self.restricted:
            clauses.extend(self._name_visible(name) for name in referenced(query, expand))
        return and_(*clauses)

    @functools.lru_cache(maxsize=16)  # noqa: B019 (instances are few and shared)
    def document(self, document: ColumnElement[Any]) -> ColumnElement[Any]:
        """An entity's JSON (a column over ``entities``) without its hidden attributes."""
        if not self.restricted:
            return document
        member = func.jsonb_each(document).table_valued("key", "value").render_derived("member")
        visible = or_(
            member.c.key == any_(_text_array(CORE_MEMBERS)),
            self.attribute_visible(member.c.key),
        )
        kept = (
            select(
                func.coalesce(
                    func.jsonb_object_agg(member.c.key, member.c.value), literal({}, JSONB)
                )
            )
            .select_from(member)
            .where(visible)
            .scalar_subquery()
        )
        # Entities with an unrestricted readable type keep their document as it is.
        return case((self._unrestricted(entities.c.types), document), else_=kept)

    def visible_names(
        self, types: Sequence[str], requested: Sequence[str] | None
    ) -> Sequence[str] | None:
        """The attribute names to read for an entity with ``types`` (None: all)."""
        readable = [t for t in types if self.readable is None or t in self.readable]
        if any(t not in self.restricted for t in readable):
            return requested
        visible = frozenset[str]().union(*(self.restricted[t] for t in readable))
        if requested is None:
            return sorted(visible)
        return [name for name in requested if name in visible]

    def is_readable(self, connection: Connection, entity_id: str) -> bool:
        """Whether the entity (live or deleted) with ``entity_id`` is readable, in SQL."""
        if self.readable is None:
            return True
        found = connection.execute(
            select(literal(1)).where(entities.c.id == entity_id, self.readable_entities())
        ).first()
        return found is not None


def retrieve_visible(
    connection: Connection, entity_id: str, projection: Projection, access: DataAccess
) -> dict[str, Any] | None:
    """One live entity's JSON without its hidden attributes, or None (absent or unreadable)."""
    document = access.document(document_column(projection))
    return connection.execute(
        select(document).where(entities.c.id == entity_id, LIVE_ENTITY, access.entity_condition())
    ).scalar_one_or_none()


def visible_groups(
    access: DataAccess | None,
    types: Mapping[str, Sequence[str]],
    ids: Sequence[str],
    attrs: Sequence[str] | None,
) -> list[tuple[list[str], Sequence[str] | None]]:
    """``ids`` grouped by the attribute names their types let the subject read.

    Each group's history is then read with its own ``name IN (...)`` condition, so hidden
    instances never leave the database. Without restrictions: one group, ``attrs``.
    """
    if access is None or not access.restricted:
        return [(list(ids), attrs)]
    groups: dict[tuple[str, ...] | None, list[str]] = {}
    for entity_id in ids:
        if entity_id in types:
            names = access.visible_names(types[entity_id], attrs)
            groups.setdefault(None if names is None else tuple(names), []).append(entity_id)
    return [(group, None if names is None else list(names)) for names, group in groups.items()]


def referenced(query: EntityQuery, expand: Callable[[str], str]) -> set[str]:
    """The (expanded) attribute names a query filters or orders on."""
    names = set(query.attrs) | set(query.q_attributes)
    names |= {term.path.attribute for term in query.order_by}
    if query.geo is not None:
        names.add(query.geo.geoproperty)
    return {expand(name) for name in names if name not in CORE_MEMBERS}


def data_access(scope: DataScope | None, *, vocabulary: str) -> DataAccess | None:
    """The SQL form of ``scope``; None when it restricts nothing.

    Type and attribute names in policies are expanded like observations' short names: an
    IRI stays as written, a core-context term maps to its IRI, anything else gets
    ``vocabulary`` (by default the core context's ``@vocab``).
    """
    if scope is None:
        return None
    if (
        scope.tenants is None
        and scope.readable_types is None
        and scope.writable_types is None
        and not scope.attributes
    ):
        return None
    attributes = tuple(sorted((t, frozenset(names)) for t, names in scope.attributes.items()))
    return _data_access(
        scope.tenants, scope.readable_types, scope.writable_types, attributes, vocabulary
    )


@functools.lru_cache(maxsize=256)
def _data_access(
    tenants: frozenset[str] | None,
    readable_types: frozenset[str] | None,
    writable_types: frozenset[str] | None,
    attributes: tuple[tuple[str, frozenset[str]], ...],
    vocabulary: str,
) -> DataAccess:
    def expanded(names: Iterable[str] | None) -> frozenset[str] | None:
        return None if names is None else frozenset(expand_term(n, vocabulary) for n in names)

    readable = expanded(readable_types)
    restricted = {
        expand_term(entity_type, vocabulary): frozenset(
            expand_term(name, vocabulary) for name in names
        )
        for entity_type, names in attributes
    }
    if readable is not None:
        restricted = {t: names for t, names in restricted.items() if t in readable}
    return DataAccess(
        tenants=tenants,
        readable=readable,
        writable=expanded(writable_types),
        restricted=restricted,
    )


#: Writer operations and where their entity is: the first argument, an id or an entity.
WRITER_OPERATIONS = frozenset(
    {
        # ContextWriter
        "create",
        "replace",
        "merge",
        "append",
        "update",
        "patch_attribute",
        "replace_attribute",
        "delete_attribute",
        "delete_scope",
        "delete",
        "require_type",
        "prune",
        # TemporalWriter
        "append_history",
        "modify_instance",
        "delete_instance",
        "delete_attribute_history",
        "purge",
    }
)
#: Writer members that touch no particular entity.
WRITER_PASS_THROUGH = frozenset({"connection", "finish"})


class GuardedWriter:
    """A context or temporal writer that refuses entities the subject may not write.

    Before each operation it locks the entity's row (``FOR UPDATE``, as the writer itself
    does next) and checks its current types and the types the operation adds; a refusal
    raises :class:`AccessDeniedError` inside the facade's transaction, so nothing is
    committed (in a batch, only that entity fails). An operation it does not know is
    refused too: a new writer method must be added to :data:`WRITER_OPERATIONS`.
    """

    def __init__(self, writer: Any, access: DataAccess) -> None:
        self._writer = writer
        self._access = access

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._writer, name)
        if name in WRITER_PASS_THROUGH:
            return target
        if name not in WRITER_OPERATIONS:
            raise AccessDeniedError(f"writer operation {name} is not checked for authorization")

        def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check(args)
            return target(*args, **kwargs)

        return guarded

    def _check(self, args: Sequence[Any]) -> None:
        first = args[0]
        entity_id = first if isinstance(first, str) else first.id
        added: list[str] = list(getattr(first, "types", None) or [])
        for argument in args[1:]:
            if isinstance(argument, list) and all(isinstance(a, str) for a in argument):
                added.extend(argument)  # append_history's types
            else:
                added.extend(getattr(argument, "types", None) or [])
        current = self._writer.connection.execute(
            select(entities.c.types).where(entities.c.id == entity_id).with_for_update()
        ).scalar_one_or_none()
        self._access.require_writable(entity_id, [*(current or []), *added])
