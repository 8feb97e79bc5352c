"""Context queries compiled once per query *shape*, then run with only their values bound.

Building a SQLAlchemy statement for a parsed query and compiling it cost more Python time
than PostgreSQL needs to run it (``docs/performance.md``). Queries that differ only in their
values — the number in ``NO2>60``, the point of a geo-query, ``limit`` — give the same SQL
text with other parameters. :class:`StatementCache` splits a parsed :class:`EntityQuery`
into its *shape* (structure, names, operators, value types: everything but the values) and
its *leaves* (the values), builds and compiles the statement once per shape, and afterwards
only computes the parameters of each query.

The builder and the split agree by construction, not through a second hand-written walk:

- the split is generic: every field of the query's frozen dataclasses is walked; a leaf is
  a value node (:data:`LEAF_TYPES`) or one of the query's value fields
  (:data:`VALUE_FIELDS`); everything else is part of the shape;
- the builder reads a leaf's value only through :func:`bound`, which, while a shape is
  being compiled, names the parameter after the leaf's position in the split and records
  how the parameter derives from the leaf (a pure function of the leaf); later queries of
  the shape replay those derivations on their own leaves;
- the ``expand`` calls the builder makes are recorded with the compiled shape, and reused
  only for a caller whose ``expand`` gives the same IRIs (another ``@context`` may not).

A builder that read a leaf's value directly, not through :func:`bound`, would bake the first
query's value into the shape's SQL: ``StatementCache(check=True)`` (used by the tests) also
builds every cached query from scratch and raises on any difference in SQL or parameters.
Statements whose SQL depends on values in ways the split cannot see (SQLAlchemy's
"expanding" ``IN`` lists) are not cached: they are built every time.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import psycopg2.extensions
from sqlalchemy import Connection, Dialect, Engine, bindparam, literal
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

from cityos_kernel.database import driver_errors_wrapped
from cityos_knowledge.query.geo import GeoQuery, GeoRelation
from cityos_knowledge.query.nodes import Boolean, Date, DateTime, Number, Pattern, Text, Time, Uri
from cityos_knowledge.query.params import EntityQuery
from cityos_knowledge.query.targets import Expander

#: Value nodes of a query tree: their values are parameters, their types part of the shape.
LEAF_TYPES: tuple[type, ...] = (Number, Text, Boolean, DateTime, Date, Time, Uri, Pattern, GeoQuery)
#: Fields of :class:`EntityQuery` holding values (whether they are set is part of the shape).
VALUE_FIELDS = frozenset({"ids", "id_pattern", "limit", "offset", "order_from"})

_PLAIN = (str, int, float, bool, Decimal, datetime, date, time, enum.Enum)
_PARAMETER = re.compile(r"%\((\w+)\)s")

Builder = Callable[[EntityQuery, Expander], ClauseElement]


class _UnshapeableError(Exception):
    """The query cannot be split (a value node shared between two places, an odd value)."""


@dataclass(frozen=True, slots=True)
class _Split:
    shape: Hashable
    leaves: tuple[Any, ...]
    query: EntityQuery
    #: Per leaf, the :data:`VALUE_FIELDS` name it was read from (None for a value node).
    fields: tuple[str | None, ...]

    def positions(self) -> dict[tuple[int, str | None], int]:
        """Where :func:`bound` finds each leaf: (id of its owner, field) -> position.

        Only a shape being compiled needs it; a value node found in two places makes the
        query unshapeable (which position would its parameters take?).
        """
        found: dict[tuple[int, str | None], int] = {}
        for position, (leaf, name) in enumerate(zip(self.leaves, self.fields, strict=True)):
            key = (id(self.query), name) if name is not None else (id(leaf), None)
            if key in found:
                raise _UnshapeableError
            found[key] = position
        return found


def _leaf_shape(node: Any) -> Hashable:
    if isinstance(node, GeoQuery):
        return (
            node.relation,
            node.geometry,
            node.geoproperty,
            node.max_distance is None,
            node.min_distance is None,
        )
    return None


_LEAF_SET = frozenset(LEAF_TYPES)


@functools.cache
def _field_names(kind: type) -> tuple[str, ...] | None:
    """The fields of a dataclass type (None for other types)."""
    if not is_dataclass(kind):
        return None
    return tuple(field.name for field in fields(kind))


def _walk(node: Any, leaves: list[Any]) -> Hashable:
    """The shape of ``node``; its value nodes appended to ``leaves`` in walking order."""
    kind: Any = type(node)
    if kind in _LEAF_SET:
        leaves.append(node)
        return (kind, _leaf_shape(node))
    names = _field_names(kind)
    if names is not None:
        return (kind, *(_walk(getattr(node, name), leaves) for name in names))
    if isinstance(node, tuple | list):
        return tuple(_walk(item, leaves) for item in node)
    if node is None or isinstance(node, _PLAIN):
        return node
    raise _UnshapeableError


#: Walked sub-trees of queries (``types``, ``q``…) by identity: the parser keeps the trees
#: of texts it has seen (``params._remembered``), so a repeated expression is one object,
#: walked once. Keyed by ``id`` with the tree held (its id cannot be reused meanwhile), not
#: by equality: a compiled shape binds the leaves of the very objects it was built from.
_WALKED: dict[int, tuple[Any, Hashable, tuple[Any, ...]]] = {}
_WALKED_SIZE = 2048


def _walk_tree(node: Any) -> tuple[Hashable, tuple[Any, ...]]:
    known = _WALKED.get(id(node))
    if known is not None and known[0] is node:
        return known[1], known[2]
    leaves: list[Any] = []
    shape = _walk(node, leaves)
    if len(_WALKED) >= _WALKED_SIZE:
        _WALKED.clear()
    _WALKED[id(node)] = (node, shape, tuple(leaves))
    return shape, tuple(leaves)


#: The fields of :class:`EntityQuery`, each with whether it is one of :data:`VALUE_FIELDS`.
_QUERY_FIELDS = tuple((name, name in VALUE_FIELDS) for name in _field_names(EntityQuery) or ())


def _split(query: EntityQuery) -> _Split:
    leaves: list[Any] = []
    fields: list[str | None] = []
    shape: list[Hashable] = []
    for name, is_value in _QUERY_FIELDS:
        value = getattr(query, name)
        if is_value:
            leaves.append(value)
            fields.append(name)
            shape.append(bool(value) if name == "ids" else value is None)
            continue
        kind: Any = type(value)
        if value is None or kind is bool or (kind is tuple and not value):
            shape.append(value)  # what _walk would give: nothing to walk
            continue
        if kind not in _LEAF_SET and _field_names(kind) is not None:  # an expression tree
            part, subtree = _walk_tree(value)
            shape.append(part)
        else:
            found: list[Any] = []
            shape.append(_walk(value, found))
            subtree = tuple(found)
        leaves.extend(subtree)
        fields.extend([None] * len(subtree))
    return _Split(tuple(shape), tuple(leaves), query, tuple(fields))


class _Recorder:
    """What one shape's build bound, and the names it expanded."""

    def __init__(self, positions: dict[tuple[int, str | None], int], expand: Expander) -> None:
        self.positions = positions
        self.derivations: dict[str, tuple[int, Callable[[Any], Any]]] = {}
        self.expansions: dict[str, str] = {}
        self._expand = expand

    def expand(self, term: str) -> str:
        iri = self._expand(term)
        self.expansions[term] = iri
        return iri

    def bind(
        self, leaf: Any, field: str | None, value: Any, derive: Callable[[Any], Any], type_: Any
    ) -> BindParameter[Any]:
        position = self.positions.get((id(leaf), field))
        if position is None:  # not a leaf: the value is part of the shape, a constant
            return literal(derive(value), type_)
        name = f"v{position}_{len(self.derivations)}"
        self.derivations[name] = (position, derive)
        return bindparam(name, derive(value), type_=type_)


_recording: ContextVar[_Recorder | None] = ContextVar("cityos_query_shape", default=None)


def bound(
    leaf: Any, derive: Callable[[Any], Any], type_: Any = None, *, field: str | None = None
) -> BindParameter[Any]:
    """A bound parameter for a query value: ``derive(leaf)`` (or of ``leaf.<field>``).

    The builder must read every value of a query (the :data:`LEAF_TYPES` nodes and the
    :data:`VALUE_FIELDS` of :class:`EntityQuery`) through this function, with ``derive`` a
    pure function of the value alone (no closure over the query or ``expand``).
    """
    value = leaf if field is None else getattr(leaf, field)
    recorder = _recording.get()
    if recorder is None:
        return literal(derive(value), type_)
    return recorder.bind(leaf, field, value, derive, type_)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A compiled statement as a server-side prepared statement (ADR 0065)."""

    name: str
    prepare: str
    execute: str
    #: The derived parameters, in ``$n`` order (constants are written into ``prepare``).
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    constants: dict[str, Any]
    derivations: tuple[tuple[str, int, Callable[[Any], Any], Callable[[Any], Any] | None], ...]
    expansions: tuple[tuple[str, str], ...]
    #: Its :class:`_Prepared` form once made (by the first connection that prepares it).
    prepared: list[_Prepared] = field(default_factory=list, compare=False)

    def fits(self, expand: Expander) -> bool:
        return all(expand(term) == iri for term, iri in self.expansions)

    def parameters(self, leaves: Sequence[Any]) -> dict[str, Any]:
        values = dict(self.constants)
        for name, position, derive, process in self.derivations:
            value = derive(leaves[position])
            values[name] = process(value) if process is not None else value
        return values


class StatementCache:
    """Compiled SQL of context queries per (variant, tenant schema, shape); thread-safe.

    ``variant`` names what the builder makes beyond the query (the page with or without
    system attributes, the count…): the caller keeps it in step with its builder.
    """

    def __init__(self, dialect: Dialect, *, size: int = 512, check: bool = False) -> None:
        self._dialect = dialect
        self._size = size
        self.check = check
        self._entries: OrderedDict[Hashable, list[_Compiled] | None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def sql(
        self,
        variant: Hashable,
        schema: str,
        query: EntityQuery,
        expand: Expander,
        build: Builder,
    ) -> tuple[_Compiled, dict[str, Any]] | None:
        """The compiled statement of ``build(query, expand)`` (its SQL text is ``.sql``) and
        the query's parameters; None when not cacheable.

        ``build`` must use the query and the ``expand`` it is given (the latter is recorded).
        """
        try:
            split = _split(query)
        except _UnshapeableError:
            return None
        key = (variant, schema, split.shape)
        with self._lock:
            known = self._entries.get(key, [])
            if key in self._entries:
                self._entries.move_to_end(key)
        if known is None:
            return None
        for compiled in known:
            if compiled.fits(expand):
                parameters = compiled.parameters(split.leaves)
                if self.check:
                    self._verify((compiled.sql, parameters), schema, query, expand, build)
                return compiled, parameters
        try:
            positions = split.positions()
        except _UnshapeableError:
            return None
        compiled_now = self._compile(split, positions, schema, query, expand, build)
        with self._lock:
            if compiled_now is None:
                self._entries[key] = None
            else:
                self._entries[key] = [*(self._entries.get(key) or []), compiled_now][-4:]
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        if compiled_now is None:
            return None
        return compiled_now, compiled_now.parameters(split.leaves)

    def _compile(
        self,
        split: _Split,
        positions: dict[tuple[int, str | None], int],
        schema: str,
        query: EntityQuery,
        expand: Expander,
        build: Builder,
    ) -> _Compiled | None:
        recorder = _Recorder(positions, expand)
        token = _recording.set(recorder)
        try:
            statement = build(query, recorder.expand)
        finally:
            _recording.reset(token)
        compiled = self._render(statement, schema)
        if compiled is None:
            return None
        sql, binds = compiled
        constants: dict[str, Any] = {}
        derivations = []
        for name, (value, process) in binds.items():
            if name in recorder.derivations:
                position, derive = recorder.derivations[name]
                derivations.append((name, position, derive, process))
            else:
                constants[name] = process(value) if process is not None else value
        return _Compiled(sql, constants, tuple(derivations), tuple(recorder.expansions.items()))

    def _render(
        self, statement: ClauseElement, schema: str
    ) -> tuple[str, dict[str, tuple[Any, Callable[[Any], Any] | None]]] | None:
        compiled = statement.compile(
            dialect=self._dialect,
            schema_translate_map={None: schema},
            render_schema_translate=True,
        )
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params or compiled.post_compile_params:
            return None
        values = compiled.construct_params()
        assert values is not None
        binds: dict[str, tuple[Any, Callable[[Any], Any] | None]] = {}
        for parameter, name in compiled.bind_names.items():
            process = parameter.type.dialect_impl(self._dialect).bind_processor(self._dialect)
            binds[name] = (values[name], process)
        return compiled.string, binds

    def _verify(
        self,
        found: tuple[str, dict[str, Any]],
        schema: str,
        query: EntityQuery,
        expand: Expander,
        build: Builder,
    ) -> None:
        fresh = self._render(build(query, expand), schema)
        assert fresh is not None
        sql, binds = fresh
        values = {
            name: process(value) if process is not None else value
            for name, (value, process) in binds.items()
        }
        cached_sql, cached_values = found
        same_text = _PARAMETER.sub("?", sql) == _PARAMETER.sub("?", cached_sql)
        fresh_values = [values[name] for name in _PARAMETER.findall(sql)]
        cached = [cached_values[name] for name in _PARAMETER.findall(cached_sql)]
        if not same_text or fresh_values != cached:
            raise AssertionError(
                f"statement cache disagrees with the builder for {query!r}:\n"
                f"cached {cached_sql} {cached}\nbuilt  {sql} {fresh_values}"
            )


def run_query(
    connection: Connection,
    cache: StatementCache,
    variant: Hashable,
    query: EntityQuery,
    expand: Expander,
    build: Builder,
) -> Sequence[Any]:
    """The rows of ``build(query, expand)`` on ``connection`` (a tenant-bound connection).

    A cacheable statement runs as compiled SQL on the DBAPI cursor: in the connection's
    transaction when it has begun one, else in autocommit (one statement, its own snapshot,
    no BEGIN and COMMIT round trips). Others run through SQLAlchemy as usual.
    """
    schema = connection.get_execution_options()["schema_translate_map"][None]
    found = cache.sql(variant, schema, query, expand, build)
    if found is None:
        statement: Any = build(query, expand)
        return connection.execute(statement).all()
    alone = not connection.in_transaction()
    return _fetch_all(
        connection.connection,
        connection.dialect,
        *found,
        prepare=plan_is_fixed(query),
        alone=alone,
        invalidate=connection.invalidate,
    )


def run_pooled_query(
    engine: Engine,
    schema: str,
    cache: StatementCache,
    variant: Hashable,
    query: EntityQuery,
    expand: Expander,
    build: Builder,
) -> Sequence[Any]:
    """:func:`run_query` on a connection of ``engine``'s pool, in autocommit, for ``schema``.

    A cached statement runs on the pooled DBAPI connection itself, checked out of the pool
    and back without a SQLAlchemy :class:`~sqlalchemy.Connection` (about 30 µs less per
    query than ``engine.connect()``, the schema binding and ``close()``); the pool's events
    (the idle ping, ADR 0066; the session settings) apply as for any checkout.
    """
    found = cache.sql(variant, schema, query, expand, build)
    if found is None:
        with engine.connect() as connection:
            bound = connection.execution_options(schema_translate_map={None: schema})
            statement: Any = build(query, expand)
            return bound.execute(statement).all()
    pooled = engine.raw_connection()
    try:
        return _fetch_all(
            pooled,
            engine.dialect,
            *found,
            prepare=plan_is_fixed(query),
            alone=True,
            invalidate=pooled.invalidate,
        )
    finally:
        pooled.close()


def plan_is_fixed(query: EntityQuery) -> bool:
    """Whether the query's structure fixes its plan, so a generic plan is as good (ADR 0065).

    A bounded ``near`` query reads its candidates as an array of ids first (an index-only
    scan of ``entity_locations``), then the entities by primary key: whatever the values,
    PostgreSQL plans it the same way, and planning it again each time costs ~0.3 ms.
    """
    geo = query.geo
    return geo is not None and geo.relation is GeoRelation.NEAR and geo.max_distance is not None


#: ``connection.info`` key: the names of the statements prepared on that DBAPI connection
#: (the pool clears ``info`` when it closes or invalidates the connection).
_PREPARED = "cityos_knowledge.prepared"
#: Statements PostgreSQL refused to prepare (a parameter whose type it cannot infer…).
_UNPREPARABLE: set[str] = set()
#: Set once on a connection before its first prepared statement: plan it once, generically.
_GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"
#: SQLSTATE invalid_sql_statement_name: the statement was deallocated behind our back.
_NOT_PREPARED = "26000"


#: A parameter placeholder or an escaped ``%`` in SQLAlchemy's compiled text.
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def _prepared_form(compiled: _Compiled, cursor: Any) -> _Prepared:
    """``compiled`` as ``PREPARE``/``EXECUTE`` texts, made once per compiled statement.

    The shape's constants (expanded names, kinds, SRIDs…) are written into the prepared
    text as literals, quoted by psycopg2 exactly as it quotes them as parameters (it
    interpolates every parameter into the statement text on the client anyway): each
    ``EXECUTE`` then sends, and PostgreSQL parses, only the query's values. The name is a
    hash of the text with its constants, so another ``@context``'s statement of the same
    shape (other expanded names) is prepared under its own name.
    """
    if compiled.prepared:
        return compiled.prepared[0]
    names: list[str] = []
    constants = compiled.constants

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name in constants:
            quoted: bytes = cursor.mogrify("%s", (constants[name],))
            return quoted.decode(psycopg2.extensions.encodings[cursor.connection.encoding])
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    positional = _PLACEHOLDER.sub(replace, compiled.sql)
    name = "cityos_q_" + hashlib.blake2b(positional.encode(), digest_size=12).hexdigest()
    arguments = f" ({', '.join(['%s'] * len(names))})" if names else ""
    form = _Prepared(
        name, f"PREPARE {name} AS {positional}", f"EXECUTE {name}{arguments}", tuple(names)
    )
    compiled.prepared[:] = [form]
    return form


def _execute_prepared(
    pooled: PoolProxiedConnection,
    errors: type[Exception],
    cursor: Any,
    compiled: _Compiled,
    parameters: dict[str, Any],
) -> None:
    """Run ``compiled`` as a prepared statement of this connection (prepared on first use)."""
    form = _prepared_form(compiled, cursor)
    prepared: set[str] = pooled.info.setdefault(_PREPARED, set())
    if form.name not in prepared:
        if not prepared:
            cursor.execute(_GENERIC_PLANS)
        try:
            cursor.execute(form.prepare)
        except errors as error:
            if getattr(error, "pgcode", None) is None:  # not PostgreSQL's answer: lost?
                raise
            _UNPREPARABLE.add(compiled.sql)
            cursor.execute(compiled.sql, parameters)
            return
        prepared.add(form.name)
    values = [parameters[parameter] for parameter in form.names]
    try:
        cursor.execute(form.execute, values)
    except errors as error:
        if getattr(error, "pgcode", None) != _NOT_PREPARED:
            raise
        cursor.execute(form.prepare)
        cursor.execute(form.execute, values)


def _fetch_all(
    pooled: PoolProxiedConnection,
    dialect: Dialect,
    compiled: _Compiled,
    parameters: dict[str, Any],
    *,
    prepare: bool,
    alone: bool,
    invalidate: Callable[[BaseException], None],
) -> list[Any]:
    """The rows of ``compiled`` on the pooled connection; ``alone``: no transaction is open
    on it (the statement runs in autocommit); ``invalidate`` drops a lost connection."""
    sql = compiled.sql
    dbapi_connection: Any = pooled.dbapi_connection
    errors = dialect.loaded_dbapi.Error
    if alone:
        # psycopg2 switches autocommit without a round trip while the session keeps its
        # default isolation level (SQLAlchemy's isolation_level option would send two).
        dbapi_connection.autocommit = True
    try:
        # Callers handle sqlalchemy.exc.DataError…; a lost connection is not given back.
        with (
            driver_errors_wrapped(dialect, dbapi_connection, sql, parameters, invalidate),
            dbapi_connection.cursor() as cursor,
        ):
            if prepare and alone and sql not in _UNPREPARABLE:
                # Only in autocommit: a refused PREPARE must not abort a transaction.
                _execute_prepared(pooled, errors, cursor, compiled, parameters)
            else:
                cursor.execute(sql, parameters)
            return list(cursor.fetchall())
    finally:
        if alone and pooled.is_valid:
            dbapi_connection.autocommit = False
