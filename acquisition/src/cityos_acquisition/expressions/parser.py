"""A recursive-descent parser from tokens to an expression tree.

Precedence, lowest first: ``?:``, ``||``, ``&&``, ``== !=``, ``< <= > >=``, ``+ -``,
``* / %``, unary ``- !``, ``^``/``**`` (right-associative), then postfix transforms
``x|fn(args)``, member access ``x.k`` and indexing ``x[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cityos_acquisition.expressions.functions import FUNCTIONS
from cityos_acquisition.expressions.lexer import ExpressionError, Token, tokenize

MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Unary:
    operator: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    operator: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Conditional:
    condition: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    arguments: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Member:
    target: Node
    key: Node


@dataclass(frozen=True, slots=True)
class ArrayLiteral:
    items: tuple[Node, ...]


Node = Literal | Name | Unary | Binary | Conditional | Call | Member | ArrayLiteral

_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("||",),
    ("&&",),
    ("==", "!="),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/", "%"),
)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def _is(self, *operators: str) -> bool:
        return self.current.kind == "op" and self.current.text in operators

    def _advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def _expect(self, operator: str) -> None:
        if not self._is(operator):
            found = self.current.text or "end of expression"
            raise ExpressionError(
                f"expected {operator!r} at {self.current.position}, found {found!r}"
            )
        self._advance()

    def parse(self) -> Node:
        node = self.expression()
        if self.current.kind != "end":
            raise ExpressionError(f"unexpected {self.current.text!r} at {self.current.position}")
        return node

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH}")
        try:
            condition = self.binary(0)
            if self._is("?"):
                self._advance()
                then = self.expression()
                self._expect(":")
                otherwise = self.expression()
                return Conditional(condition, then, otherwise)
            return condition
        finally:
            self.depth -= 1

    def binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self._is(*_LEVELS[level]):
            operator = self._advance().text
            node = Binary(operator, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self._is("-", "!", "+"):
            operator = self._advance().text
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(f"expression nested deeper than {MAX_DEPTH}")
            try:
                return Unary(operator, self.unary())
            finally:
                self.depth -= 1
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self._is("^", "**"):
            self._advance()
            return Binary("^", base, self.unary())
        return base

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self._is("|"):
                self._advance()
                name = self._advance()
                if name.kind != "name":
                    raise ExpressionError(f"expected a transform name at {name.position}")
                arguments = self._arguments() if self._is("(") else ()
                node = Call(str(name.value), (node, *arguments))
            elif self._is("."):
                self._advance()
                key = self._advance()
                if key.kind != "name":
                    raise ExpressionError(f"expected a property name at {key.position}")
                node = Member(node, Literal(key.value))
            elif self._is("["):
                self._advance()
                key_node = self.expression()
                self._expect("]")
                node = Member(node, key_node)
            else:
                return node

    def _arguments(self) -> tuple[Node, ...]:
        self._expect("(")
        arguments: list[Node] = []
        if not self._is(")"):
            arguments.append(self.expression())
            while self._is(","):
                self._advance()
                arguments.append(self.expression())
        self._expect(")")
        return tuple(arguments)

    def primary(self) -> Node:
        token = self.current
        if token.kind in ("number", "string"):
            self._advance()
            return Literal(token.value)
        if token.kind == "name":
            self._advance()
            name = str(token.value)
            if self._is("("):
                return Call(name, self._arguments())
            if name in _KEYWORDS:
                return Literal(_KEYWORDS[name])
            return Name(name)
        if self._is("("):
            self._advance()
            node = self.expression()
            self._expect(")")
            return node
        if self._is("["):
            self._advance()
            items: list[Node] = []
            if not self._is("]"):
                items.append(self.expression())
                while self._is(","):
                    self._advance()
                    items.append(self.expression())
            self._expect("]")
            return ArrayLiteral(tuple(items))
        found = token.text or "end of expression"
        raise ExpressionError(f"unexpected {found!r} at {token.position}")


def _strip_legacy(text: str) -> str:
    """``${@value * 100}`` (the IoT Agent's legacy plugin syntax) → ``value * 100``."""
    stripped = text.strip()
    if stripped.startswith("${") and stripped.endswith("}"):
        return stripped[2:-1]
    return stripped


@dataclass(frozen=True)
class Expression:
    """A compiled expression; :func:`cityos_acquisition.expressions.evaluate` runs it."""

    source: str
    tree: Node

    def names(self) -> set[str]:
        """The variables the expression reads."""
        return {node.name for node in self._nodes() if isinstance(node, Name)}

    def functions(self) -> set[str]:
        """The functions and transforms the expression calls."""
        return {node.function for node in self._nodes() if isinstance(node, Call)}

    def _nodes(self) -> list[Node]:
        found: list[Node] = []
        stack: list[Node] = [self.tree]
        while stack:
            node = stack.pop()
            found.append(node)
            if isinstance(node, Unary):
                stack.append(node.operand)
            elif isinstance(node, Binary):
                stack.extend((node.left, node.right))
            elif isinstance(node, Conditional):
                stack.extend((node.condition, node.then, node.otherwise))
            elif isinstance(node, Call):
                stack.extend(node.arguments)
            elif isinstance(node, Member):
                stack.extend((node.target, node.key))
            elif isinstance(node, ArrayLiteral):
                stack.extend(node.items)
        return found


def compile_expression(text: str) -> Expression:
    """Parse ``text``; raises :class:`ExpressionError` with the position of the problem."""
    source = _strip_legacy(text)
    if not source:
        raise ExpressionError("empty expression")
    expression = Expression(text, _Parser(tokenize(source)).parse())
    unknown = expression.functions() - FUNCTIONS.keys()
    if unknown:
        raise ExpressionError(
            f"unknown function(s) {', '.join(sorted(unknown))}; "
            f"available: {', '.join(sorted(FUNCTIONS))}"
        )
    return expression
