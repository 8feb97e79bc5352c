"""Turns expression text into tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cityos_acquisition.codecs.errors import DecodeError

TokenKind = Literal["number", "string", "name", "op", "end"]

#: Longest first, so ``<=`` wins over ``<``.
OPERATORS = (
    "**", "==", "!=", "<=", ">=", "&&", "||",
    "+", "-", "*", "/", "%", "^", "<", ">", "!", "?", ":", "(", ")", "[", "]", ",", ".", "|",
)  # fmt: skip
MAX_LENGTH = 1000
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


class ExpressionError(DecodeError):
    """An expression that cannot be compiled, or a value it cannot be applied to."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    position: int
    value: float | int | str | None = None


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(_ESCAPES.get(text[index + 1], text[index + 1]))
            index += 2
            continue
        if char == quote:
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise ExpressionError(f"unterminated string starting at {start}")


def _read_number(text: str, start: int) -> tuple[float | int, int]:
    index = start
    while index < len(text) and (text[index].isdigit() or text[index] == "."):
        index += 1
    if index < len(text) and text[index] in "eE":
        exponent = index + 1
        if exponent < len(text) and text[exponent] in "+-":
            exponent += 1
        if exponent < len(text) and text[exponent].isdigit():
            index = exponent
            while index < len(text) and text[index].isdigit():
                index += 1
    literal = text[start:index]
    try:
        return (float(literal) if any(c in literal for c in ".eE") else int(literal)), index
    except ValueError as exc:
        raise ExpressionError(f"bad number {literal!r} at {start}") from exc


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char.isdigit() or (
            char == "." and index + 1 < len(text) and text[index + 1].isdigit()
        ):
            number, end = _read_number(text, index)
            tokens.append(Token("number", text[index:end], index, number))
            index = end
        elif char in "\"'":
            string, end = _read_string(text, index)
            tokens.append(Token("string", text[index:end], index, string))
            index = end
        elif char.isalpha() or char in "_@$":
            end = index + 1
            while end < len(text) and (text[end].isalnum() or text[end] in "_@$"):
                end += 1
            tokens.append(Token("name", text[index:end], index, text[index:end].lstrip("@")))
            index = end
        else:
            for operator in OPERATORS:
                if text.startswith(operator, index):
                    tokens.append(Token("op", operator, index))
                    index += len(operator)
                    break
            else:
                raise ExpressionError(f"unexpected character {char!r} at {index}")
    tokens.append(Token("end", "", len(text)))
    return tokens
