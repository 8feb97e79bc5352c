"""The attribute-mapping expression language: what it computes and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from cityos_acquisition.expressions import ExpressionError, compile_expression, evaluate


def run(source: str, **variables: Any) -> Any:
    return evaluate(compile_expression(source), variables)


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("t * 1.8 + 32", {"t": "21.5"}, pytest.approx(70.7)),
        ("${@value * 100}", {"value": 0.5}, 50.0),
        ("value / 10", {"value": 235}, 23.5),
        ("value|round(1)", {"value": 3.14159}, 3.1),
        ("value|toFixed(0)", {"value": 2.6}, 3),
        ("(a + b) / 2", {"a": 10, "b": "20"}, 15.0),
        ("2 ^ 3 ^ 2", {}, 512),
        ("-2 ** 2", {}, -4),
        ("10 % 4 + -3", {}, -1),
        ('h > 90 ? "wet" : "dry"', {"h": "95"}, "wet"),
        ("h >= 10 && h <= 20", {"h": 15}, True),
        ("!(a == 1) || b", {"a": 1, "b": False}, False),
        ('"room " + id', {"id": 7}, "room 7"),
        ("gps.latitude", {"gps": {"latitude": 40.1}}, 40.1),
        ("values[1] - values[0]", {"values": [3, 10]}, 7),
        ("max(a, b, 3)", {"a": 1, "b": 2}, 3),
        ("state|toUpperCase", {"state": "on"}, "ON"),
        ("sqrt(16) + abs(-1) + floor(1.7) + ceil(1.2)", {}, 8.0),
        ("[1, 2, 3]|length", {}, 3),
        ("1e3 + .5", {}, 1000.5),
        ('"a\\"b"', {}, 'a"b'),
    ],
)
def test_computes(source: str, variables: dict[str, Any], expected: Any) -> None:
    assert run(source, **variables) == expected


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("", "empty expression"),
        ("1 +", "unexpected"),
        ("(1 + 2", r"expected '\)'"),
        ("a ? b", "expected ':'"),
        ("__import__('os')", "unknown function"),
        ("a.__class__", None),
        ("1 ; 2", "unexpected character ';'"),
        ('"open', "unterminated string"),
        ("(" * 100 + "1" + ")" * 100, "nested deeper"),
        ("1 + " * 400 + "1", "longer than"),
    ],
)
def test_refuses_to_compile(source: str, reason: str | None) -> None:
    if reason is None:
        # Member access compiles, but it only ever reads dictionary keys, never attributes.
        with pytest.raises(ExpressionError, match="cannot index"):
            run(source, a=1)
        return
    with pytest.raises(ExpressionError, match=reason):
        compile_expression(source)


@pytest.mark.parametrize(
    ("source", "variables", "reason"),
    [
        ("value / 0", {"value": 1}, "division by zero"),
        ("value * 2", {"value": "warm"}, "not a number"),
        ("missing + 1", {}, "no measure or variable named 'missing'"),
        ("10 ^ 400", {}, "cannot be computed|too large|not a finite"),
        ("(-8) ^ 0.5", {}, "not a real number"),
        ("round(value, 99)", {"value": 1}, "between 0 and 15"),
        ("sqrt(-1)", {}, "negative"),
    ],
)
def test_fails_at_run_time_with_a_reason(
    source: str, variables: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ExpressionError, match=reason):
        run(source, **variables)


def test_names_lists_the_measures_read() -> None:
    assert compile_expression("t * 1.8 + offset|round(1)").names() == {"t", "offset"}
