"""The NGSI-LD query languages of the knowledge layer: parsers, and their translation to SQL.

Parsing (pure, no database): :func:`parse_entity_query` turns Query Entities parameters
(``id``, ``idPattern``, ``type``, ``q``, ``scopeQ``, ``georel``/``geometry``/``coordinates``/
``geoproperty``, ``attrs``, ``pick``/``omit``, ``orderBy``/``orderFrom``, ``limit``/
``offset``/``count``) into an :class:`EntityQuery`; each parameter also has its own parser.
Every malformed value raises :class:`InvalidQueryError` (400 BadRequestData) naming the
parameter and the character where the problem is.
"""

from __future__ import annotations

from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.geo import GeoQuery, parse_geo_query
from cityos_knowledge.query.params import EntityQuery, parse_entity_query
from cityos_knowledge.query.q_parser import parse_q
from cityos_knowledge.query.selectors import (
    parse_order_by,
    parse_projection,
    parse_scope_query,
    parse_type_selection,
)

__all__ = [
    "EntityQuery",
    "GeoQuery",
    "InvalidQueryError",
    "parse_entity_query",
    "parse_geo_query",
    "parse_order_by",
    "parse_projection",
    "parse_q",
    "parse_scope_query",
    "parse_type_selection",
]
