"""The functions and transforms an expression may call: a fixed, side-effect-free list."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cityos_acquisition.expressions.lexer import ExpressionError


def to_number(value: Any) -> float | int:
    """Numbers as they are, numeric text as a number (UltraLight sends text)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise ExpressionError(f"{value!r} is not a number")


def _round(value: Any, digits: Any = 0) -> float | int:
    places = int(to_number(digits))
    if not 0 <= places <= 15:
        raise ExpressionError("round() keeps between 0 and 15 decimals")
    rounded = round(to_number(value), places)
    return int(rounded) if places == 0 else rounded


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _substr(value: Any, start: Any, length: Any = None) -> str:
    text = _text(value)
    begin = int(to_number(start))
    if length is None:
        return text[begin:]
    return text[begin : begin + int(to_number(length))]


def _sqrt(value: Any) -> float:
    number = to_number(value)
    if number < 0:
        raise ExpressionError("sqrt() of a negative number")
    return math.sqrt(number)


def _numbers(values: tuple[Any, ...]) -> list[float | int]:
    if not values:
        raise ExpressionError("needs at least one argument")
    flat = values[0] if len(values) == 1 and isinstance(values[0], list) else values
    return [to_number(item) for item in flat]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "round": _round,
    "toFixed": _round,
    "floor": lambda value: math.floor(to_number(value)),
    "ceil": lambda value: math.ceil(to_number(value)),
    "abs": lambda value: abs(to_number(value)),
    "sqrt": _sqrt,
    "min": lambda *values: min(_numbers(values)),
    "max": lambda *values: max(_numbers(values)),
    "number": to_number,
    "parseFloat": lambda value: float(to_number(value)),
    "parseInt": lambda value: int(to_number(value)),
    "toString": _text,
    "str": _text,
    "toUpperCase": lambda value: _text(value).upper(),
    "toLowerCase": lambda value: _text(value).lower(),
    "trim": lambda value: _text(value).strip(),
    "length": lambda value: len(value) if isinstance(value, list | dict) else len(_text(value)),
    "substr": _substr,
    "replace": lambda value, old, new: _text(value).replace(_text(old), _text(new)),
    "split": lambda value, separator: _text(value).split(_text(separator)),
}
