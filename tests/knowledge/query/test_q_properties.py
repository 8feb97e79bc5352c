"""Property-based tests of the ``q`` parser: any well-formed tree survives a round trip
through its text, and no input at all makes the parser fail with anything but a clear
:class:`InvalidQueryError`."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.nodes import (
    METADATA_MEMBERS,
    And,
    AttributePath,
    Boolean,
    Comparison,
    Date,
    DateTime,
    Exists,
    Expression,
    Number,
    Operator,
    Or,
    Pattern,
    Range,
    Scalar,
    Term,
    Text,
    Time,
    Uri,
    ValueList,
)
from cityos_knowledge.query.q_parser import ENTITY_TIMESTAMPS, parse_q

_RESERVED = METADATA_MEMBERS | ENTITY_TIMESTAMPS | {"true", "false"}

names = st.builds(
    str.__add__, st.sampled_from("aqzAQZéü東"), st.text("aqzAQZ09_éü東", max_size=6)
).filter(lambda name: name not in _RESERVED)
members = st.one_of(
    names, st.builds(str.__add__, st.sampled_from("09"), st.text("a0-", max_size=3))
)
paths = st.builds(
    AttributePath,
    names,
    st.lists(names, max_size=2).map(tuple),
    st.one_of(st.just(("*",)), st.lists(members, max_size=3).map(tuple)),
)
numbers = st.builds(
    Number, st.decimals(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
)
_printable = st.characters(categories=("L", "N", "P", "S", "Zs"))
texts = st.builds(Text, st.text(_printable, max_size=12))
bare_words = st.builds(
    lambda word: Text(word, quoted=False),
    st.builds(str.__add__, st.sampled_from("amz"), st.text("amz_", max_size=6)).filter(
        lambda word: word not in _RESERVED
    ),
)
date_times = st.builds(
    DateTime, st.datetimes(timezones=st.just(UTC)).map(lambda value: value.replace(microsecond=0))
)
dates = st.builds(Date, st.dates())
times = st.builds(Time, st.times().map(lambda value: value.replace(microsecond=0)))
uris = st.builds(
    lambda kind, key: Uri(f"urn:ngsi-ld:{kind}:{key}"),
    st.sampled_from(["Building", "Streetlight"]),
    st.text("az09", min_size=1, max_size=6),
)
comparables = st.one_of(numbers, texts, bare_words, date_times, dates, times)
scalars = st.one_of(comparables, st.builds(Boolean, st.booleans()), uris)


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    kind = draw(st.sampled_from([numbers, texts, date_times, dates, times]))
    return Range(draw(kind), draw(kind))


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    operator = draw(st.sampled_from(list(Operator)))
    if operator.is_pattern:
        value: object = Pattern(draw(st.text(_printable, min_size=1, max_size=10)))
    elif operator.is_ordering:
        value = draw(comparables)
    else:
        value = draw(
            st.one_of(
                scalars,
                ranges(),
                st.lists(scalars, min_size=2, max_size=4).map(lambda v: ValueList(tuple(v))),
            )
        )
    return Comparison(draw(paths), operator, value)  # type: ignore[arg-type]


terms = st.one_of(comparisons(), st.builds(Exists, paths, st.booleans()))


def _groups(kind: type[And[Term]] | type[Or[Term]], depth: int) -> st.SearchStrategy[Expression]:
    """``kind`` groups whose nested groups are of the other kind (what the parser yields)."""
    other: type[And[Term]] | type[Or[Term]] = Or if kind is And else And
    child = st.one_of(terms, _groups(other, depth - 1)) if depth > 1 else terms
    return st.lists(child, min_size=2, max_size=3).map(lambda items: kind(tuple(items)))


expressions = st.one_of(terms, _groups(And, 3), _groups(Or, 3))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scalar(value: Scalar) -> str:
    match value:
        case Number(number):
            return str(number)
        case Text(text, quoted):
            return _quote(text) if quoted else text
        case Boolean(flag):
            return "true" if flag else "false"
        case DateTime(instant):
            return instant.isoformat().replace("+00:00", "Z")
        case Date(day) | Time(day):
            return day.isoformat()
        case Uri(uri):
            return uri
    raise AssertionError(value)


def render(expression: Expression, *, parenthesize: bool = False) -> str:
    match expression:
        case And(items):
            text = ";".join(render(item, parenthesize=isinstance(item, Or)) for item in items)
        case Or(items):
            text = "|".join(render(item) for item in items)
        case Exists(path, negated):
            return ("!" if negated else "") + str(path)
        case Comparison(path, operator, value):
            match value:
                case Range(low, high):
                    rendered = f"{_scalar(low)}..{_scalar(high)}"
                case ValueList(values):
                    rendered = ",".join(_scalar(item) for item in values)
                case Pattern(regex):
                    rendered = _quote(regex)
                case _:
                    rendered = _scalar(value)
            return f"{path}{operator.value}{rendered}"
    return f"({text})" if parenthesize else text


@settings(max_examples=150, deadline=None)
@given(expressions)
def test_any_tree_round_trips_through_its_text(expression: Expression) -> None:
    assert parse_q(render(expression)) == expression


@settings(max_examples=50, deadline=None)
@given(expressions)
def test_redundant_parentheses_change_nothing(expression: Expression) -> None:
    assert parse_q(f"(({render(expression)}))") == expression


def _failure(text: str) -> InvalidQueryError | None:
    """The parser's complaint about ``text``; any other exception propagates (and fails)."""
    try:
        parse_q(text)
    except InvalidQueryError as error:
        return error
    return None


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab1.;|(),"=!<>~[]*\\ :-Tz\x00é')), max_size=30))
def test_any_text_parses_or_fails_with_a_positioned_invalid_query_error(text: str) -> None:
    error = _failure(text)
    assert error is None or error.position is None or 0 <= error.position <= len(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_unicode_fails_only_with_invalid_query_error(text: str) -> None:
    error = _failure(text)
    assert error is None or error.parameter == "q"


def test_decimal_rendering_is_what_the_parser_reads() -> None:
    assert parse_q("a==1E+3").value == Number(Decimal(1000))  # type: ignore[union-attr]
