"""The ``q`` parser: what each construct becomes, and what a malformed query is told."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.nodes import (
    And,
    AttributePath,
    Boolean,
    Comparison,
    Date,
    DateTime,
    Exists,
    Number,
    Operator,
    Or,
    Pattern,
    Range,
    Text,
    Time,
    Uri,
    ValueList,
)
from cityos_knowledge.query.q_parser import parse_q


def path(text: str) -> AttributePath:
    """A path written the short way: ``a.b[c.d]`` (single bracket group)."""
    names, _, members = text.partition("[")
    attribute, *subs = names.split(".")
    return AttributePath(
        attribute, tuple(subs), tuple(members.rstrip("]").split(".")) if members else ()
    )


def gt(attribute: str, number: int) -> Comparison:
    return Comparison(path(attribute), Operator.GREATER, Number(Decimal(number)))


def test_and_binds_tighter_than_or() -> None:
    assert parse_q("a>1|b>2;c>3") == Or((gt("a", 1), And((gt("b", 2), gt("c", 3)))))
    assert parse_q("a>1;b>2|c>3") == Or((And((gt("a", 1), gt("b", 2))), gt("c", 3)))


def test_parentheses_override_precedence_and_groups_flatten() -> None:
    assert parse_q("(a>1|b>2);c>3") == And((Or((gt("a", 1), gt("b", 2))), gt("c", 3)))
    assert parse_q("a>1;(b>2;c>3)") == And((gt("a", 1), gt("b", 2), gt("c", 3)))
    assert parse_q("((a>1))") == gt("a", 1)


@pytest.mark.parametrize(
    ("text", "operator"),
    [
        ("a==1", Operator.EQUAL),
        ("a!=1", Operator.UNEQUAL),
        ("a>1", Operator.GREATER),
        ("a>=1", Operator.GREATER_EQUAL),
        ("a<1", Operator.LESS),
        ("a<=1", Operator.LESS_EQUAL),
    ],
)
def test_every_comparison_operator(text: str, operator: Operator) -> None:
    assert parse_q(text) == Comparison(path("a"), operator, Number(Decimal(1)))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x==42", Number(Decimal(42))),
        ("x==-3.25", Number(Decimal("-3.25"))),
        ("x==6.02e23", Number(Decimal("6.02e23"))),
        ('x=="a \\"quoted\\" word"', Text('a "quoted" word')),
        ('x=="back\\\\slash \\u00e9"', Text("back\\slash é")),
        ('x=="; | ( ) == .."', Text("; | ( ) == ..")),
        ('x=="42"', Text("42")),
        ("x==true", Boolean(True)),
        ("x==false", Boolean(False)),
        ("x==2024-05-01T08:30:00Z", DateTime(datetime(2024, 5, 1, 8, 30, tzinfo=UTC))),
        (
            "x==2024-05-01T08:30:00.123456789+02:00",
            DateTime(datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))),
        ),
        ("x==2024-05-01T08:30:00", DateTime(datetime(2024, 5, 1, 8, 30, tzinfo=UTC))),
        ("x==2024-05-01", Date(date(2024, 5, 1))),
        ("x==08:30:00", Time(time(8, 30))),
        ("x==urn:ngsi-ld:Building:store001", Uri("urn:ngsi-ld:Building:store001")),
        ("x==https://example.org/a/b?c", Uri("https://example.org/a/b?c")),
        ("x==commercial", Text("commercial", quoted=False)),
        ("x==ünïcode", Text("ünïcode", quoted=False)),
    ],
)
def test_values_are_typed_by_their_form(text: str, value: object) -> None:
    parsed = parse_q(text)
    assert isinstance(parsed, Comparison)
    assert parsed.value == value


def test_ranges_and_value_lists() -> None:
    assert parse_q("speed==10..40") == Comparison(
        path("speed"), Operator.EQUAL, Range(Number(Decimal(10)), Number(Decimal(40)))
    )
    assert parse_q("speed!=1.5..2.5") == Comparison(
        path("speed"), Operator.UNEQUAL, Range(Number(Decimal("1.5")), Number(Decimal("2.5")))
    )
    assert parse_q('name=="a".."m"') == Comparison(
        path("name"), Operator.EQUAL, Range(Text("a"), Text("m"))
    )
    assert parse_q("d==2024-01-01T00:00:00Z..2024-02-01T00:00:00Z").value == Range(
        DateTime(datetime(2024, 1, 1, tzinfo=UTC)), DateTime(datetime(2024, 2, 1, tzinfo=UTC))
    )
    assert parse_q('route=="550","551",552,true') == Comparison(
        path("route"),
        Operator.EQUAL,
        ValueList((Text("550"), Text("551"), Number(Decimal(552)), Boolean(True))),
    )


def test_patterns_keep_regex_escapes() -> None:
    assert parse_q('name~="^Eiffel\\s+T"') == Comparison(
        path("name"), Operator.MATCHES, Pattern("^Eiffel\\s+T")
    )
    assert parse_q('name!~="(?i)tower|bridge"') == Comparison(
        path("name"), Operator.NOT_MATCHES, Pattern("(?i)tower|bridge")
    )
    assert parse_q("name~=^m") == Comparison(path("name"), Operator.MATCHES, Pattern("^m"))


def test_existence_and_non_existence() -> None:
    assert parse_q("temperature") == Exists(path("temperature"))
    assert parse_q("!heading;speed>25") == And(
        (Exists(path("heading"), negated=True), gt("speed", 25))
    )


def test_attribute_paths_with_sub_attributes_members_and_metadata() -> None:
    parsed = parse_q("temperature.accuracy.value>0.5")
    assert isinstance(parsed, Comparison)
    assert parsed.path == AttributePath("temperature", ("accuracy", "value"))
    assert parse_q('address[streetAddress]=="Gran Vía"').path == AttributePath(  # type: ignore[union-attr]
        "address", (), ("streetAddress",)
    )
    assert parse_q("a[b.c][d]==1").path == AttributePath("a", (), ("b", "c", "d"))  # type: ignore[union-attr]
    assert parse_q('name[*]=="rouge"').path == AttributePath("name", (), ("*",))  # type: ignore[union-attr]
    observed = parse_q("temperature.observedAt>=2017-12-24T12:00:00Z")
    assert isinstance(observed, Comparison)
    assert observed.path.metadata == "observedAt"
    assert parse_q('temperature.unitCode=="CEL"').path.metadata == "unitCode"  # type: ignore[union-attr]
    assert parse_q("ex:prefixed_name==1").path == AttributePath("ex:prefixed_name")  # type: ignore[union-attr]


def test_timestamps_compared_with_quoted_date_times_read_them_as_instants() -> None:
    instant = DateTime(datetime(2020, 1, 1, tzinfo=UTC))
    assert parse_q('modifiedAt>"2020-01-01T00:00:00Z"').value == instant  # type: ignore[union-attr]
    assert parse_q('speed.observedAt>"2020-01-01T00:00:00Z"').value == instant  # type: ignore[union-attr]
    with pytest.raises(InvalidQueryError, match=r"createdAt is a timestamp"):
        parse_q('createdAt>"yesterday"')


@pytest.mark.parametrize(
    ("text", "character", "message"),
    [
        ("", None, "the value is empty"),
        ("a=1", 2, "a single '=' is not an operator"),
        ("a==", 4, "expected a value after '=='"),
        ("(a>1", 5, "expected ')' to close the '(' at character 1"),
        ("a>1)", 4, "this ')' closes no '('"),
        ("a>1;", 5, "expected a term"),
        ("a>1||b>2", 5, "expected a term"),
        (";a", 1, "expected a term"),
        ("a>1 ;b", 4, "spaces are not allowed"),
        ("a>2021-01-01T00:00:00 01:00", 22, "%2B"),
        ("a>true", 2, "true/false can only be compared with '==' or '!='"),
        ("a<urn:x:y", 2, "an unquoted URI can only be compared"),
        ("a>4..5", 4, "ranges and lists are only allowed after '==' or '!='"),
        ("a>=1,2", 5, "ranges and lists are only allowed"),
        ("a==1..x", 5, "both ends of a range must be of the same kind"),
        ("a==true..false", 8, "a range needs numbers"),
        ('a=="open', 4, "the quoted string is not closed"),
        ('a=="\\u12"', 5, "four hexadecimal digits"),
        ("a==hello.world", 4, "put strings in double quotes"),
        ("a==1e999", 4, "out of range"),
        ("a==2023-02-30", 4, "not a valid date"),
        ("a==2023-13-01T00:00:00Z", 4, "not a valid date-time"),
        ("1a==1", 1, "expected an attribute name, found '1a'"),
        ("a..b==1", 2, "expected an operator"),
        ("a.==1", 3, "expected an attribute name, found nothing"),
        ("a[]==1", 3, "expected a member name"),
        ("a[b==1", 4, "expected ']' to close the '[' at character 2"),
        ("a[*.b]==1", 1, "'[*]' (any language) cannot be combined"),
        ("a{b}==1", 2, "linked-entity queries"),
        ("!a==1", 3, "'!' only negates existence"),
        ("a~1", 2, "'~' must be followed by '='"),
        ("a==1\x00", 5, "control character"),
        ('a=="x\x00"', 6, "control character"),
        ("a==1 or b", 5, "spaces are not allowed"),
    ],
)
def test_malformed_queries_are_rejected_with_the_position(
    text: str, character: int | None, message: str
) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        parse_q(text)
    error = caught.value
    assert error.parameter == "q"
    assert message in str(error)
    if character is None:
        assert error.position is None
    else:
        assert error.position == character - 1
        assert f"at character {character}" in str(error)


def test_hostile_depth_and_length_are_refused_not_crashing() -> None:
    deep = "(" * 200 + "a" + ")" * 200
    with pytest.raises(InvalidQueryError, match="nest deeper than 32"):
        parse_q(deep)
    with pytest.raises(InvalidQueryError, match="longer than 8192 characters"):
        parse_q("a==" + "1" * 9000)
    long_but_fine = ";".join(f"a{i}>{i}" for i in range(500))
    assert len(parse_q(long_but_fine).terms) == 500  # type: ignore[union-attr]
