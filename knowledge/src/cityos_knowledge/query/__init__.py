"""The NGSI-LD query languages of the knowledge layer: parsers, and their translation to SQL.

All filtering happens in PostgreSQL, with bound parameters only. The service facade uses it
in three steps:

1. **Parse** the request's query-string parameters (pure, no database)::

       query = parse_entity_query(params)              # Mapping[str, str], NGSI-LD names

   ``id``, ``idPattern``, ``type``, ``q``, ``scopeQ``, ``georel``/``geometry``/
   ``coordinates``/``geoproperty``, ``attrs``, ``pick``/``omit``, ``orderBy``/``orderFrom``,
   ``limit``/``offset``/``count`` become one frozen :class:`EntityQuery`. A malformed value
   raises :class:`InvalidQueryError` (a ``BadRequestDataError``: 400 BadRequestData) whose
   message names the parameter and the character where the problem is; a ``limit`` above
   ``max_limit`` raises ``TooManyResultsError`` (403). ``EntityQuery.selects_something``
   tells whether the spec's "at least one selector" rule for Query Entities holds. Each
   parameter also has its own parser (:func:`parse_q`, :func:`parse_type_selection`…).
   ``parse_entity_query`` keeps the parsed ``q``, ``type`` and ``scopeQ`` trees by text
   (bounded; the trees are frozen and shared between queries: never rebuild one in place).

2. **Translate** against the tables of ``cityos_knowledge.store.tables`` (bind the tenant's
   schema on the connection with ``bind_schema``). ``expand`` turns the terms the client
   wrote (attribute names, sub-attribute names, types, ``geoproperty``) into the IRIs the
   store holds; members inside ``[ ]`` are JSON keys and are not expanded::

       where = build_entity_filter(query, expand=expand)      # ColumnElement[bool]
       page = select_entities(query, expand=expand)           # Select: id, entity (projected)
       total = count_entities(query, expand=expand)           # Select: count(*)
       order = entity_ordering(query, expand=expand)          # ORDER BY items, id last
       document = entity_document(query, expand=expand)       # attrs/pick/omit applied

   ``build_entity_filter`` is a clause over ``entities`` (live entities only) that can be
   combined with other clauses or used in DELETE/UPDATE statements (purge).

3. **Execute** with serial plans (parallel workers cost ten times what these queries do):
   the store's connections have them (``store.database.SESSION_SETTINGS``); elsewhere call
   :func:`prefer_serial_plans` (``SET LOCAL max_parallel_workers_per_gather = 0``) in the
   transaction. The facade runs them through :mod:`cityos_knowledge.query.shapes`: SQL
   compiled once per query shape, values bound, in autocommit (ADR 0017); builders must
   read query values through ``shapes.bound``. The only database error a query can raise
   on its own is SQLSTATE ``2201B`` (``invalid_regular_expression``) for a malformed ``~=``
   pattern or ``idPattern``: report it as BadRequestData. ``select_entities(...,
   with_total=True)`` returns the total for ``count=true`` in the same execution.
"""

from __future__ import annotations

from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.geo import GeoQuery, parse_geo_query
from cityos_knowledge.query.paging import (
    count_entities,
    entity_document,
    entity_ordering,
    select_entities,
)
from cityos_knowledge.query.params import EntityQuery, parse_entity_query
from cityos_knowledge.query.q_parser import parse_q
from cityos_knowledge.query.selection import build_entity_filter
from cityos_knowledge.query.selectors import (
    parse_order_by,
    parse_projection,
    parse_scope_query,
    parse_type_selection,
)
from cityos_knowledge.query.session import prefer_serial_plans
from cityos_knowledge.query.targets import Expander

INVALID_REGULAR_EXPRESSION = "2201B"

__all__ = [
    "INVALID_REGULAR_EXPRESSION",
    "EntityQuery",
    "Expander",
    "GeoQuery",
    "InvalidQueryError",
    "build_entity_filter",
    "count_entities",
    "entity_document",
    "entity_ordering",
    "parse_entity_query",
    "parse_geo_query",
    "parse_order_by",
    "parse_projection",
    "parse_q",
    "parse_scope_query",
    "parse_type_selection",
    "prefer_serial_plans",
    "select_entities",
]
