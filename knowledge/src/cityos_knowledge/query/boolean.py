"""The boolean skeleton every selection language shares, parsed by recursive descent.

``;`` is *and*, ``|`` is *or* (``,`` too in type selections and ``scopeQ``), parentheses
group, and *and* binds tighter than *or*: ``a|b;c`` is ``a | (b ; c)``. Each language
supplies the parser of its own terms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.lexer import Kind, Lexer, Token
from cityos_knowledge.query.nodes import And, Or

T = TypeVar("T")

#: Deepest parenthesis nesting accepted (keeps hostile input away from Python's stack).
MAX_NESTING = 32


def describe(token: Token) -> str:
    """How a token is named in an error message."""
    if token.kind is Kind.END:
        return "the end of the value"
    if token.kind is Kind.STRING:
        return "a quoted string"
    return repr(token.text)


class TokenStream:
    """The tokens of one parameter value with one token of look-ahead."""

    def __init__(self, lexer: Lexer) -> None:
        self.lexer = lexer
        self._tokens = lexer.tokens()
        self._index = 0

    def peek(self) -> Token:
        return self._tokens[self._index]

    def advance(self) -> Token:
        token = self._tokens[self._index]
        if token.kind is not Kind.END:
            self._index += 1
        return token

    def accept(self, kind: Kind) -> Token | None:
        if self.peek().kind is kind:
            return self.advance()
        return None

    def expect(self, kind: Kind, what: str) -> Token:
        token = self.peek()
        if token.kind is not kind:
            raise self.error(f"expected {what}, found {describe(token)}", token)
        return self.advance()

    def error(self, reason: str, token: Token | None = None) -> InvalidQueryError:
        position = (token or self.peek()).position
        return self.lexer.error(reason, position)


def parse_boolean(
    stream: TokenStream,
    term: Callable[[], T],
    *,
    comma_is_or: bool,
) -> T | And[T] | Or[T]:
    """Parse the whole stream as terms joined by ``;``/``|`` with parentheses."""
    parser = _BooleanParser(stream, term, comma_is_or=comma_is_or)
    tree = parser.disjunction(depth=0)
    token = stream.peek()
    if token.kind is Kind.RPAREN:
        raise stream.error("this ')' closes no '('", token)
    if token.kind is not Kind.END:
        raise stream.error(f"expected ';', '|' or the end, found {describe(token)}", token)
    return tree


class _BooleanParser(Generic[T]):
    def __init__(self, stream: TokenStream, term: Callable[[], T], *, comma_is_or: bool) -> None:
        self._stream = stream
        self._term = term
        self._or_kinds = {Kind.OR, Kind.COMMA} if comma_is_or else {Kind.OR}

    def disjunction(self, depth: int) -> T | And[T] | Or[T]:
        terms = [self._conjunction(depth)]
        while self._stream.peek().kind in self._or_kinds:
            self._stream.advance()
            terms.append(self._conjunction(depth))
        if len(terms) == 1:
            return terms[0]
        return Or(tuple(_flatten(terms, Or)))

    def _conjunction(self, depth: int) -> T | And[T] | Or[T]:
        terms = [self._primary(depth)]
        while self._stream.accept(Kind.AND):
            terms.append(self._primary(depth))
        if len(terms) == 1:
            return terms[0]
        return And(tuple(_flatten(terms, And)))

    def _primary(self, depth: int) -> T | And[T] | Or[T]:
        opening = self._stream.accept(Kind.LPAREN)
        if opening is None:
            token = self._stream.peek()
            if token.kind in (Kind.AND, Kind.OR, Kind.COMMA, Kind.END, Kind.RPAREN):
                raise self._stream.error(f"expected a term, found {describe(token)}", token)
            return self._term()
        if depth >= MAX_NESTING:
            raise self._stream.error(f"parentheses nest deeper than {MAX_NESTING}", opening)
        inner = self.disjunction(depth + 1)
        if self._stream.accept(Kind.RPAREN) is None:
            found = describe(self._stream.peek())
            raise self._stream.error(
                f"expected ')' to close the '(' at character {opening.position + 1}, found {found}"
            )
        return inner


def _flatten(
    terms: list[T | And[T] | Or[T]], kind: type[And[T]] | type[Or[T]]
) -> list[T | And[T] | Or[T]]:
    """``(a;b);c`` is ``a;b;c``: merge nested groups of the same kind."""
    flat: list[T | And[T] | Or[T]] = []
    for term in terms:
        if isinstance(term, kind):
            flat.extend(term.terms)
        else:
            flat.append(term)
    return flat
