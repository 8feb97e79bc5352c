"""Evaluates an expression tree against the measures of one message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cityos_acquisition.expressions.functions import FUNCTIONS, to_number
from cityos_acquisition.expressions.lexer import ExpressionError
from cityos_acquisition.expressions.parser import (
    ArrayLiteral,
    Binary,
    Call,
    Conditional,
    Expression,
    Literal,
    Member,
    Name,
    Node,
    Unary,
)

#: A result larger than this is refused (it would only ever be a mistake or an attack).
MAX_MAGNITUDE = 1e300


def _truthy(value: Any) -> bool:
    return bool(value)


def _check(number: float | int) -> float | int:
    if isinstance(number, float) and not abs(number) <= MAX_MAGNITUDE:
        raise ExpressionError("result is not a finite number")
    if isinstance(number, int) and abs(number) > MAX_MAGNITUDE:
        raise ExpressionError("result is too large")
    return number


def _is_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        to_number(value)
    except ExpressionError:
        return True
    return False


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    if operator == "+" and (_is_text(left) or _is_text(right)):
        return f"{FUNCTIONS['toString'](left)}{FUNCTIONS['toString'](right)}"
    a, b = to_number(left), to_number(right)
    if operator == "+":
        return _check(a + b)
    if operator == "-":
        return _check(a - b)
    if operator == "*":
        return _check(a * b)
    if operator in ("/", "%"):
        if b == 0:
            raise ExpressionError("division by zero")
        return _check(a / b if operator == "/" else a % b)
    if isinstance(a, int) and isinstance(b, int) and 0 <= b <= 64 and abs(a) <= 1_000_000:
        return _check(a**b)
    try:
        result = float(a) ** float(b)
    except (OverflowError, ZeroDivisionError) as exc:
        raise ExpressionError(f"{a} ^ {b} cannot be computed") from exc
    if isinstance(result, complex):  # a negative number to a fractional power
        raise ExpressionError(f"{a} ^ {b} is not a real number")
    return _check(result)


def _compare(operator: str, left: Any, right: Any) -> bool:
    if operator in ("==", "!="):
        try:
            equal = to_number(left) == to_number(right)
        except ExpressionError:
            equal = left == right
        return equal if operator == "==" else not equal
    try:
        a: Any = to_number(left)
        b: Any = to_number(right)
    except ExpressionError:
        if not (isinstance(left, str) and isinstance(right, str)):
            raise
        a, b = left, right
    if operator == "<":
        return bool(a < b)
    if operator == "<=":
        return bool(a <= b)
    if operator == ">":
        return bool(a > b)
    return bool(a >= b)


def _evaluate(node: Node, variables: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        if node.name not in variables:
            raise ExpressionError(f"no measure or variable named {node.name!r}")
        return variables[node.name]
    if isinstance(node, Unary):
        operand = _evaluate(node.operand, variables)
        if node.operator == "!":
            return not _truthy(operand)
        number = to_number(operand)
        return -number if node.operator == "-" else number
    if isinstance(node, Binary):
        if node.operator == "&&":
            left = _evaluate(node.left, variables)
            return _evaluate(node.right, variables) if _truthy(left) else left
        if node.operator == "||":
            left = _evaluate(node.left, variables)
            return left if _truthy(left) else _evaluate(node.right, variables)
        left, right = _evaluate(node.left, variables), _evaluate(node.right, variables)
        if node.operator in ("==", "!=", "<", "<=", ">", ">="):
            return _compare(node.operator, left, right)
        return _arithmetic(node.operator, left, right)
    if isinstance(node, Conditional):
        branch = node.then if _truthy(_evaluate(node.condition, variables)) else node.otherwise
        return _evaluate(branch, variables)
    if isinstance(node, Call):
        arguments = [_evaluate(argument, variables) for argument in node.arguments]
        try:
            return FUNCTIONS[node.function](*arguments)
        except ExpressionError:
            raise
        except (TypeError, ValueError, OverflowError, IndexError) as exc:
            raise ExpressionError(f"{node.function}() failed: {exc}") from exc
    if isinstance(node, Member):
        target = _evaluate(node.target, variables)
        key = _evaluate(node.key, variables)
        if isinstance(target, dict) and isinstance(key, str):
            if key not in target:
                raise ExpressionError(f"no key {key!r}")
            return target[key]
        if isinstance(target, list):
            index = int(to_number(key))
            if not -len(target) <= index < len(target):
                raise ExpressionError(f"index {index} out of range")
            return target[index]
        raise ExpressionError(f"cannot index {type(target).__name__} with {key!r}")
    if isinstance(node, ArrayLiteral):
        return [_evaluate(item, variables) for item in node.items]
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")


def evaluate(expression: Expression, variables: Mapping[str, Any]) -> Any:
    """The value of ``expression`` with ``variables`` (measures by object_id, ``value``)."""
    return _evaluate(expression.tree, variables)
