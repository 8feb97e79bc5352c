"""Parser of the NGSI-LD query language ``q`` (ETSI GS CIM 009 §4.9).

Grammar (recursive descent over :mod:`cityos_knowledge.query.lexer` tokens)::

    query      = disjunction
    disjunction= conjunction *( "|" conjunction )          ; "and" binds tighter
    conjunction= primary *( ";" primary )
    primary    = "(" disjunction ")" / term
    term       = "!" path                                 ; the target does not exist
               / path [ operator value ]                  ; alone: the target exists
    path       = name *( "." name ) *( "[" member *( "." member ) "]" )
    operator   = "==" / "!=" / ">" / ">=" / "<" / "<=" / "~=" / "!~="
    value      = scalar [ ".." scalar / 1*( "," scalar ) ]  ; ranges and lists: == and != only
    scalar     = quoted-string / number / "true" / "false" / date-time / date / time / URI

Values are typed as the spec says: a quoted string is a string, an unquoted word is a
number, boolean, date-time (``2024-05-01T08:00:00Z``), date, time or URI when it has that
form. An unquoted word of letters, digits, ``_`` and ``-`` is accepted as a string too,
because several brokers and the ETSI test suite send ``category==commercial``.
Patterns after ``~=`` / ``!~=`` are quoted strings (or a single unquoted word).
A member ``[x]`` addresses a key inside a compound value, or a language in a
LanguageProperty's map (``name[en]``, ``name[*]``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from cityos_knowledge.query.boolean import TokenStream, describe, parse_boolean
from cityos_knowledge.query.lexer import Kind, Lexer, Token
from cityos_knowledge.query.nodes import (
    TIMESTAMP_MEMBERS,
    AttributePath,
    Boolean,
    Comparable,
    Comparison,
    Date,
    DateTime,
    Exists,
    Expression,
    Number,
    Operator,
    Pattern,
    Range,
    Scalar,
    Term,
    Text,
    Time,
    Uri,
    ValueList,
)

_NAME = re.compile(r"[^\W\d][\w\-:]*|@\w+")
_MEMBER = re.compile(r"\*|[\w\-:@$]+")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_OFFSET = r"(?:Z|[+-]\d{2}(?::?\d{2})?)"
_FRACTION = r"(?::\d{2}(?:\.(\d{1,9}))?)?"
_DATETIME = re.compile(rf"\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}{_FRACTION}{_OFFSET}?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(rf"\d{{2}}:\d{{2}}{_FRACTION}{_OFFSET}?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_BARE_WORD = re.compile(r"[^\W\d][\w\-]*")
#: Largest decimal exponent accepted in a number (a double's range; PostgreSQL is wider).
_MAX_EXPONENT = 308
#: Attributes that name an entity's own system timestamps in a query term.
ENTITY_TIMESTAMPS = frozenset({"createdAt", "modifiedAt", "deletedAt"})

_TERM_FOLLOWERS = (Kind.AND, Kind.OR, Kind.RPAREN, Kind.END)


def parse_q(text: str) -> Expression:
    """Parse a ``q`` parameter value; raises :class:`InvalidQueryError` with the position."""
    stream = TokenStream(Lexer("q", text, rich=True))
    return parse_boolean(stream, lambda: _QTerm(stream).parse(), comma_is_or=False)


def parse_attribute_path(stream: TokenStream) -> AttributePath:
    """``name(.name)*([member(.member)*])*`` — shared with ``orderBy``."""
    token = stream.peek()
    if token.kind is not Kind.WORD:
        raise stream.error(f"expected an attribute name, found {describe(token)}", token)
    stream.advance()
    names = _segments(stream, token, _NAME, "an attribute name")
    members: list[str] = []
    while opening := stream.accept(Kind.LBRACKET):
        inner = stream.peek()
        if inner.kind is not Kind.WORD:
            raise stream.error(f"expected a member name after '[', found {describe(inner)}")
        stream.advance()
        members.extend(_segments(stream, inner, _MEMBER, "a member name"))
        stream.expect(Kind.RBRACKET, f"']' to close the '[' at character {opening.position + 1}")
    if "*" in members and members != ["*"]:
        raise stream.error("'[*]' (any language) cannot be combined with other members", token)
    if stream.peek().kind is Kind.LBRACE:
        raise stream.error("linked-entity queries (attribute{...}) are not supported")
    return AttributePath(names[0], tuple(names[1:]), tuple(members))


def _segments(stream: TokenStream, token: Token, pattern: re.Pattern[str], what: str) -> list[str]:
    segments = token.text.split(".")
    offset = token.position
    for segment in segments:
        if not pattern.fullmatch(segment):
            found = repr(segment) if segment else "nothing"
            raise stream.lexer.error(f"expected {what}, found {found}", offset)
        offset += len(segment) + 1
    return segments


class _QTerm:
    """Parses one term: an existence test or a comparison."""

    def __init__(self, stream: TokenStream) -> None:
        self._stream = stream

    def parse(self) -> Term:
        stream = self._stream
        bang = stream.accept(Kind.BANG)
        path = parse_attribute_path(stream)
        token = stream.peek()
        if bang is not None:
            if token.kind is Kind.OPERATOR:
                raise stream.error("'!' only negates existence ('!attribute')", token)
            return Exists(path, negated=True)
        if token.kind is not Kind.OPERATOR:
            if token.kind in _TERM_FOLLOWERS:
                return Exists(path)
            raise stream.error(
                f"expected an operator (==, !=, >, >=, <, <=, ~=, !~=), found {describe(token)}",
                token,
            )
        stream.advance()
        operator = Operator(token.text)
        if operator.is_pattern:
            return Comparison(path, operator, self._pattern(token))
        value = self._value(operator, token)
        return Comparison(path, operator, _coerce_timestamps(stream, path, value, token))

    def _pattern(self, operator: Token) -> Pattern:
        token = self._stream.peek()
        if token.kind not in (Kind.STRING, Kind.WORD):
            raise self._stream.error(
                f"expected a pattern after {operator.text!r}, found {describe(token)}", token
            )
        self._stream.advance()
        if not token.text:
            raise self._stream.error("the pattern is empty", token)
        return Pattern(token.text)

    def _value(self, operator: Operator, operator_token: Token) -> Scalar | Range | ValueList:
        stream = self._stream
        first = self._scalar(operator_token)
        follower = stream.peek()
        if follower.kind in (Kind.DOTS, Kind.COMMA) and operator.is_ordering:
            raise stream.error(
                f"ranges and lists are only allowed after '==' or '!=', not {operator.value!r}",
                follower,
            )
        if stream.accept(Kind.DOTS):
            return self._range(first, follower)
        if follower.kind is Kind.COMMA:
            values = [first]
            while stream.accept(Kind.COMMA):
                values.append(self._scalar(operator_token))
            return ValueList(tuple(values))
        if operator.is_ordering and isinstance(first, Boolean | Uri):
            kind = "true/false" if isinstance(first, Boolean) else "an unquoted URI"
            raise stream.error(
                f"{kind} can only be compared with '==' or '!=', not {operator.value!r}",
                operator_token,
            )
        return first

    def _range(self, low: Scalar, dots: Token) -> Range:
        high = self._scalar(dots)
        if not isinstance(low, Comparable) or not isinstance(high, Comparable):
            raise self._stream.error(
                "a range needs numbers, strings, dates, times or date-times at both ends", dots
            )
        if type(low) is not type(high):
            raise self._stream.error("both ends of a range must be of the same kind", dots)
        return Range(low, high)

    def _scalar(self, after: Token) -> Scalar:
        token = self._stream.peek()
        if token.kind is Kind.STRING:
            self._stream.advance()
            return Text(token.text)
        if token.kind is not Kind.WORD:
            raise self._stream.error(
                f"expected a value after {after.text!r}, found {describe(token)}", token
            )
        self._stream.advance()
        return classify_word(self._stream, token)


def classify_word(stream: TokenStream, token: Token) -> Scalar:
    """Type an unquoted value by its form, as §4.9 does."""
    text = token.text
    if text in ("true", "false"):
        return Boolean(text == "true")
    if _NUMBER.fullmatch(text):
        return _number(stream, token)
    if _DATETIME.fullmatch(text):
        return DateTime(parse_datetime(stream, token, text))
    if _DATE.fullmatch(text):
        try:
            return Date(date.fromisoformat(text))
        except ValueError as exc:
            raise stream.error(f"not a valid date ({exc})", token) from exc
    if _TIME.fullmatch(text):
        try:
            return Time(time.fromisoformat(_six_digit_fraction(text)))
        except ValueError as exc:
            raise stream.error(f"not a valid time ({exc})", token) from exc
    if _URI.fullmatch(text):
        return Uri(text)
    if _BARE_WORD.fullmatch(text):
        return Text(text, quoted=False)
    raise stream.error(
        "not a number, true/false, date, time, date-time or URI; put strings in double quotes",
        token,
    )


def _number(stream: TokenStream, token: Token) -> Number:
    try:
        value = Decimal(token.text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits valid numbers only
        raise stream.error("not a valid number", token) from exc
    if abs(value.adjusted()) > _MAX_EXPONENT:
        raise stream.error("the number is out of range", token)
    return Number(value)


def parse_datetime(stream: TokenStream, token: Token, text: str) -> datetime:
    """ISO 8601 date-time; without an offset it is UTC, as NGSI-LD timestamps are."""
    try:
        value = datetime.fromisoformat(_six_digit_fraction(text))
    except ValueError as exc:
        raise stream.error(f"not a valid date-time ({exc})", token) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _six_digit_fraction(text: str) -> str:
    """Python reads at most microseconds; NGSI-LD allows nanoseconds. Drop the excess."""
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


def _coerce_timestamps(
    stream: TokenStream, path: AttributePath, value: Scalar | Range | ValueList, token: Token
) -> Scalar | Range | ValueList:
    """``observedAt``/``createdAt``… are instants: read a quoted value as a date-time."""
    is_timestamp = path.metadata in TIMESTAMP_MEMBERS or (
        not path.sub_attributes and not path.members and path.attribute in ENTITY_TIMESTAMPS
    )
    if not is_timestamp:
        return value

    def instant(scalar: Scalar) -> DateTime:
        if isinstance(scalar, DateTime):
            return scalar
        if isinstance(scalar, Text) and _DATETIME.fullmatch(scalar.value):
            return DateTime(parse_datetime(stream, token, scalar.value))
        raise stream.error(f"{path} is a timestamp: compare it with a date-time", token)

    if isinstance(value, Range):
        return Range(instant(value.low), instant(value.high))
    if isinstance(value, ValueList):
        return ValueList(tuple(instant(item) for item in value.values))
    return instant(value)
