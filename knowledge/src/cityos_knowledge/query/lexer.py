"""Tokenizer shared by the query-parameter grammars (``q``, ``scopeQ``, type selections).

Every grammar shares the boolean skeleton — ``;`` (and), ``|`` (or), ``,`` and parentheses
— and differs in what a word may contain. The ``q`` language adds comparison operators,
quoted strings, ``..`` ranges and ``[ ]`` members, so its words stop at more characters.

Whitespace and control characters are never part of the languages: they are rejected with
their position (a ``+`` in a URL query string decodes to a space, hence the hint).
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

from cityos_knowledge.query.errors import InvalidQueryError

#: Longest parameter value accepted; far beyond any real query, short of any abuse.
MAX_LENGTH = 8192

_OPERATORS = ("!~=", "==", "!=", ">=", "<=", "~=", ">", "<")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class Kind(enum.Enum):
    LPAREN = "("
    RPAREN = ")"
    AND = ";"
    OR = "|"
    COMMA = ","
    DOTS = ".."
    LBRACKET = "["
    RBRACKET = "]"
    LBRACE = "{"
    RBRACE = "}"
    BANG = "!"
    OPERATOR = "operator"
    STRING = "quoted string"
    WORD = "word"
    END = "end of input"


_SINGLE = {kind.value: kind for kind in Kind if len(kind.value) == 1}


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``text`` is the decoded value for a quoted string, else the raw text."""

    kind: Kind
    text: str
    position: int
    end: int


class Lexer:
    """Turns one parameter value into tokens; ``rich`` enables the ``q`` language's tokens."""

    def __init__(self, parameter: str, text: str, *, rich: bool) -> None:
        self.parameter = parameter
        self.text = text
        self._rich = rich
        self._specials = set("();|,")
        if rich:
            self._specials |= set('"[]{}=!<>~')

    def error(self, reason: str, position: int | None) -> InvalidQueryError:
        return InvalidQueryError(self.parameter, reason, text=self.text, position=position)

    def tokens(self) -> list[Token]:
        """All tokens, ending with one ``END`` token."""
        text = self.text
        if not text:
            raise self.error("the value is empty", None)
        if len(text) > MAX_LENGTH:
            raise self.error(f"longer than {MAX_LENGTH} characters", None)
        tokens: list[Token] = []
        position = 0
        while position < len(text):
            token = self._token_at(position)
            tokens.append(token)
            position = token.end
        tokens.append(Token(Kind.END, "", len(text), len(text)))
        return tokens

    def _token_at(self, position: int) -> Token:
        char = self.text[position]
        self._check_printable(char, position)
        if char in self._specials:
            return self._special_at(position)
        if self._rich and self.text.startswith("..", position):
            return Token(Kind.DOTS, "..", position, position + 2)
        return self._word_at(position)

    def _check_printable(self, char: str, position: int) -> None:
        if char.isspace():
            raise self.error(
                "spaces are not allowed outside quoted strings "
                "(a '+' in a URL query string must be sent as %2B)",
                position,
            )
        if not char.isprintable():
            raise self.error(f"control character {char!r} is not allowed", position)

    def _special_at(self, position: int) -> Token:
        char = self.text[position]
        if char == '"':
            return self._string_at(position)
        for operator in _OPERATORS:
            if self.text.startswith(operator, position):
                return Token(Kind.OPERATOR, operator, position, position + len(operator))
        if char == "=":
            raise self.error("a single '=' is not an operator; use '=='", position)
        if char == "~":
            raise self.error("'~' must be followed by '=' (the pattern operator '~=')", position)
        return Token(_SINGLE[char], char, position, position + 1)

    def _word_at(self, start: int) -> Token:
        text = self.text
        end = start
        while end < len(text):
            char = text[end]
            if char in self._specials or char.isspace() or not char.isprintable():
                break
            if self._rich and text.startswith("..", end):
                break
            end += 1
        return Token(Kind.WORD, text[start:end], start, end)

    def _string_at(self, start: int) -> Token:
        """A JSON-style quoted string; unknown escapes keep their backslash (regexes)."""
        text = self.text
        chars: list[str] = []
        position = start + 1
        while position < len(text):
            char = text[position]
            if char == '"':
                return Token(Kind.STRING, "".join(chars), start, position + 1)
            if unicodedata.category(char) == "Cc":
                raise self.error(f"control character {char!r} is not allowed", position)
            if char == "\\" and position + 1 < len(text):
                escaped, position = self._escape_at(position)
                chars.append(escaped)
                continue
            chars.append(char)
            position += 1
        raise self.error("the quoted string is not closed", start)

    def _escape_at(self, position: int) -> tuple[str, int]:
        code = self.text[position + 1]
        if code in _ESCAPES:
            return _ESCAPES[code], position + 2
        if code == "u":
            digits = self.text[position + 2 : position + 6]
            if len(digits) == 4 and all(d in "0123456789abcdefABCDEF" for d in digits):
                decoded = chr(int(digits, 16))
                if decoded == "\x00":
                    raise self.error("a NUL character is not allowed", position)
                return decoded, position + 6
            raise self.error("'\\u' must be followed by four hexadecimal digits", position)
        return "\\" + code, position + 2
