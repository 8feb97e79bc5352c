"""Query Entities parameters, parsed and checked together into one :class:`EntityQuery`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from cityos_knowledge.errors import TooManyResultsError
from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.geo import GeometryType, GeoQuery, parse_coordinates, parse_geo_query
from cityos_knowledge.query.nodes import Expression, attribute_names
from cityos_knowledge.query.q_parser import parse_q
from cityos_knowledge.query.selectors import (
    OrderTerm,
    ScopeSelection,
    TypeSelection,
    parse_attribute_names,
    parse_ids,
    parse_order_by,
    parse_projection,
    parse_scope_query,
    parse_type_selection,
)

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000

#: Parsed expressions kept per parameter, by their text (least recently used dropped).
PARSE_CACHE_SIZE = 1024
#: Longer texts are parsed every time (not worth keeping, and a client could fill memory).
MAX_CACHED_TEXT = 512

_T = TypeVar("_T")


def _remembered(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """``parse`` with its results kept by text. The parse trees are immutable (frozen
    dataclasses, tuples), so requests writing the same expression share one; errors are
    not kept (raised again each time)."""
    cached = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(parse)

    def parse_text(text: str) -> _T:
        return cached(text) if len(text) <= MAX_CACHED_TEXT else parse(text)

    return parse_text


_parse_types = _remembered(parse_type_selection)
_parse_q = _remembered(parse_q)
_parse_scope = _remembered(parse_scope_query)

#: The query-string parameters :func:`parse_entity_query` understands, by NGSI-LD name.
PARAMETERS = frozenset(
    {
        "id",
        "idPattern",
        "type",
        "q",
        "scopeQ",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "attrs",
        "pick",
        "omit",
        "orderBy",
        "orderFrom",
        "limit",
        "offset",
        "count",
    }
)


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Everything that selects, projects, orders and pages entities in a context query.

    ``types`` is ``None`` for every type; names (attributes, types, geoproperty) are as the
    user wrote them and are expanded by the translator's ``expand`` function.
    """

    ids: tuple[str, ...] = ()
    id_pattern: str | None = None
    types: TypeSelection | None = None
    q: Expression | None = None
    scope_q: ScopeSelection | None = None
    geo: GeoQuery | None = None
    attrs: tuple[str, ...] = ()
    pick: tuple[str, ...] = ()
    omit: tuple[str, ...] = ()
    order_by: tuple[OrderTerm, ...] = ()
    order_from: tuple[float, float] | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    count: bool = False

    @property
    def selects_something(self) -> bool:
        """Whether a selector the spec requires for Query Entities is present."""
        return bool(
            self.ids
            or self.id_pattern
            or self.types is not None
            or self.q is not None
            or self.geo is not None
            or self.attrs
        )

    @property
    def q_attributes(self) -> frozenset[str]:
        """The attribute names ``q`` tests, as written (empty without ``q``)."""
        return frozenset() if self.q is None else attribute_names(self.q)


def parse_entity_query(parameters: Mapping[str, str], *, max_limit: int = MAX_LIMIT) -> EntityQuery:
    """Parse query-string parameters (NGSI-LD names); unknown names are not looked at.

    Raises :class:`InvalidQueryError` (400 BadRequestData) for anything malformed and
    :class:`~cityos_knowledge.errors.TooManyResultsError` (403) when ``limit`` exceeds
    ``max_limit``.
    """
    get = parameters.get
    id_pattern = get("idPattern")
    if id_pattern is not None:
        _check_pattern("idPattern", id_pattern)
    type_text = get("type")
    query = EntityQuery(
        ids=parse_ids(ids) if (ids := get("id")) is not None else (),
        id_pattern=id_pattern,
        types=_parse_types(type_text) if type_text is not None else None,
        q=_parse_q(q) if (q := get("q")) is not None else None,
        scope_q=_parse_scope(scope) if (scope := get("scopeQ")) is not None else None,
        geo=parse_geo_query(get("georel"), get("geometry"), get("coordinates"), get("geoproperty")),
        attrs=parse_attribute_names("attrs", attrs) if (attrs := get("attrs")) else (),
        pick=parse_projection("pick", pick) if (pick := get("pick")) is not None else (),
        omit=parse_projection("omit", omit) if (omit := get("omit")) is not None else (),
        order_by=parse_order_by(order) if (order := get("orderBy")) is not None else (),
        order_from=_order_from(get("orderFrom")),
        limit=_integer("limit", get("limit"), DEFAULT_LIMIT),
        offset=_integer("offset", get("offset"), 0),
        count=_boolean("count", get("count")),
    )
    _check_combinations(query, max_limit)
    return query


def _check_combinations(query: EntityQuery, max_limit: int) -> None:
    if query.attrs and (query.pick or query.omit):
        raise InvalidQueryError("attrs", "attrs cannot be combined with pick or omit")
    both = set(query.pick) & set(query.omit)
    if both:
        raise InvalidQueryError("pick", f"{sorted(both)[0]!r} is both picked and omitted")
    if query.limit == 0 and not query.count:
        raise InvalidQueryError("limit", "limit=0 is only allowed with count=true")
    if query.limit > max_limit:
        raise TooManyResultsError(f"limit: at most {max_limit} entities per page")
    by_distance = [term for term in query.order_by if term.direction.by_distance]
    if by_distance and query.order_from is None:
        raise InvalidQueryError("orderBy", "dist-asc and dist-desc need orderFrom=[lon,lat]")


def _check_pattern(parameter: str, text: str) -> None:
    if not text:
        raise InvalidQueryError(parameter, "the pattern is empty")
    for position, char in enumerate(text):
        if not char.isprintable():
            raise InvalidQueryError(
                parameter,
                f"control character {char!r} is not allowed",
                text=text,
                position=position,
            )


def _order_from(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    point = parse_coordinates(GeometryType.POINT, text)
    return float(point[0]), float(point[1])


def _integer(parameter: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not text.isascii() or len(text) > 9:
        raise InvalidQueryError(parameter, f"expected a non-negative integer, found {text!r}")
    return int(text)


def _boolean(parameter: str, text: str | None) -> bool:
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise InvalidQueryError(parameter, f"expected true or false, found {text!r}")
