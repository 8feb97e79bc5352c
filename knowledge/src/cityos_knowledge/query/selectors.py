"""Parsers of the smaller selection parameters of Query Entities (ETSI GS CIM 009).

- ``type``: Entity Type selection (§4.17) — names joined by ``,`` or ``|`` (or), ``;``
  (and, the entity has both types) and parentheses; ``*`` selects every type.
- ``scopeQ``: Scope query (§4.19) — ``/level/level`` patterns where ``+`` matches one level
  and a final ``#`` the scope and everything below it, joined like types.
- ``id``: comma-separated entity ids (URIs). ``attrs``: comma-separated attribute names.
- ``pick`` / ``omit``: projection (§4.21) — entity members separated by ``,`` or ``|``.
- ``orderBy``: ordering (§4.23) — ``path[;asc|desc|dist-asc|dist-desc]`` separated by ``,``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from cityos_knowledge.query.boolean import TokenStream, describe, parse_boolean
from cityos_knowledge.query.lexer import Kind, Lexer, Token
from cityos_knowledge.query.nodes import And, AttributePath, Or
from cityos_knowledge.query.q_parser import parse_attribute_path

_TERM = re.compile(r"[^\W\d][\w\-:]*")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s,;|()]+")
#: An attribute named by a term or by its full IRI (4.5.4: both name the same attribute).
_ATTRIBUTE = re.compile(f"{_TERM.pattern}|{_URI.pattern}")
_SCOPE_LEVEL = re.compile(r"\w+")
ALL_TYPES = "*"


@dataclass(frozen=True, slots=True)
class EntityType:
    """One entity type as written (a short term or an IRI)."""

    name: str


TypeSelection = EntityType | And[EntityType] | Or[EntityType]


@dataclass(frozen=True, slots=True)
class ScopePattern:
    """``/a/+/c`` or ``/a/#``: ``levels`` as written, ``+`` for any one level.

    ``descendants`` is true for a final ``#``: the scope itself and every scope below it.
    """

    levels: tuple[str, ...]
    descendants: bool = False

    @property
    def is_exact(self) -> bool:
        return not self.descendants and "+" not in self.levels

    def __str__(self) -> str:
        text = "".join(f"/{level}" for level in self.levels)
        return f"{text}/#" if self.descendants else text


ScopeSelection = ScopePattern | And[ScopePattern] | Or[ScopePattern]


class Direction(enum.Enum):
    ASC = "asc"
    DESC = "desc"
    DIST_ASC = "dist-asc"
    DIST_DESC = "dist-desc"

    @property
    def by_distance(self) -> bool:
        return self in (Direction.DIST_ASC, Direction.DIST_DESC)

    @property
    def descending(self) -> bool:
        return self in (Direction.DESC, Direction.DIST_DESC)


@dataclass(frozen=True, slots=True)
class OrderTerm:
    path: AttributePath
    direction: Direction = Direction.ASC


def parse_type_selection(text: str) -> TypeSelection | None:
    """Parse ``type``; ``None`` means every type (``*``)."""
    if text == ALL_TYPES:
        return None
    stream = TokenStream(Lexer("type", text, rich=False))

    def entity_type() -> EntityType:
        token = stream.advance()
        if token.text == ALL_TYPES:
            raise stream.error("'*' selects every type and cannot be combined", token)
        _check_name(stream, token, "an entity type")
        return EntityType(token.text)

    return parse_boolean(stream, entity_type, comma_is_or=True)


def parse_scope_query(text: str) -> ScopeSelection:
    """Parse ``scopeQ``."""
    stream = TokenStream(Lexer("scopeQ", text, rich=False))
    return parse_boolean(stream, lambda: _scope_pattern(stream), comma_is_or=True)


def _scope_pattern(stream: TokenStream) -> ScopePattern:
    token = stream.advance()
    if not token.text.startswith("/"):
        raise stream.error("a scope starts with '/' (e.g. /Madrid/Gardens)", token)
    levels = token.text[1:].split("/")
    if levels == ["#"]:
        return ScopePattern((), descendants=True)
    descendants = levels[-1] == "#"
    if descendants:
        levels.pop()
    offset = token.position + 1
    for level in levels:
        if level != "+" and not _SCOPE_LEVEL.fullmatch(level):
            found = repr(level) if level else "nothing"
            reason = (
                "'#' may only end a scope"
                if "#" in level
                else f"expected a scope level, found {found}"
            )
            raise stream.lexer.error(reason, offset)
        offset += len(level) + 1
    return ScopePattern(tuple(levels), descendants)


def parse_ids(text: str) -> tuple[str, ...]:
    """Parse ``id``: entity ids (URIs) separated by commas."""
    return _list("id", text, _URI, "an entity id (a URI)", separators=(Kind.COMMA,))


def parse_attribute_names(parameter: str, text: str) -> tuple[str, ...]:
    """Parse ``attrs`` (or any comma-separated list of attribute names)."""
    return _list(parameter, text, _ATTRIBUTE, "an attribute name", separators=(Kind.COMMA,))


def parse_projection(parameter: str, text: str) -> tuple[str, ...]:
    """Parse ``pick`` or ``omit``: entity members separated by ``,`` or ``|``."""
    if "{" in text:
        position = text.index("{")
        raise Lexer(parameter, text, rich=False).error(
            "linked-entity projections (member{...}) are not supported", position
        )
    return _list(parameter, text, _TERM, "an entity member", separators=(Kind.COMMA, Kind.OR))


def _list(
    parameter: str, text: str, pattern: re.Pattern[str], what: str, *, separators: tuple[Kind, ...]
) -> tuple[str, ...]:
    stream = TokenStream(Lexer(parameter, text, rich=False))
    items: list[str] = []
    while True:
        token = stream.peek()
        if token.kind is not Kind.WORD:
            raise stream.error(f"expected {what}, found {describe(token)}", token)
        stream.advance()
        _check_name(stream, token, what, pattern)
        if token.text not in items:
            items.append(token.text)
        separator = stream.advance()
        if separator.kind is Kind.END:
            return tuple(items)
        if separator.kind not in separators:
            allowed = " or ".join(repr(kind.value) for kind in separators)
            raise stream.error(f"expected {allowed} between items, found {describe(separator)}")


def _check_name(
    stream: TokenStream, token: Token, what: str, pattern: re.Pattern[str] | None = None
) -> None:
    if token.kind is not Kind.WORD:
        raise stream.error(f"expected {what}, found {describe(token)}", token)
    patterns = (pattern,) if pattern is not None else (_TERM, _URI)
    if not any(candidate.fullmatch(token.text) for candidate in patterns):
        raise stream.error(f"{token.text!r} is not {what}", token)


def parse_order_by(text: str) -> tuple[OrderTerm, ...]:
    """Parse ``orderBy``: ``path[;direction]`` separated by commas."""
    stream = TokenStream(Lexer("orderBy", text, rich=True))
    terms: list[OrderTerm] = []
    while True:
        path = parse_attribute_path(stream)
        direction = Direction.ASC
        if stream.accept(Kind.AND):
            token = stream.advance()
            try:
                direction = Direction(token.text)
            except ValueError:
                raise stream.error(
                    f"expected asc, desc, dist-asc or dist-desc, found {describe(token)}", token
                ) from None
        terms.append(OrderTerm(path, direction))
        separator = stream.advance()
        if separator.kind is Kind.END:
            return tuple(terms)
        if separator.kind is not Kind.COMMA:
            raise stream.error(f"expected ',' or ';', found {describe(separator)}", separator)
