"""``attrs``, ``pick`` and ``omit`` with Linked Entity projections (GS CIM 009 4.21, 4.5.23).

Since V1.8 a member may carry, in braces, the selection that applies to the Entities its
Relationship links to: ``pick=id,locatedAt{id,name,isInCountry{description}}`` keeps ``id``
and ``locatedAt`` of the requested Entity, ``id``, ``name`` and ``isInCountry`` of the City
it is located at, and ``description`` of that City's Country. A :class:`Selection` is one
level of that tree; the braces only mean something with Linked Entity retrieval (``join``),
and a selection may not reach deeper than ``joinLevel`` hops.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cityos_interoperability.ngsild.errors import BadRequestDataError

#: A member name: a term (``airQualityLevel``, ``ngsi-ld:name``) or an IRI.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://?[^\s,;|(){}\[\]]+|[^\W\d][\w\-.:]*")
#: The deepest selection accepted whatever joinLevel says (a guard against abuse).
MAX_JOIN_LEVEL = 10


@dataclass(frozen=True)
class Selection:
    """Members named at one level, and per member the selection of its linked Entities."""

    names: tuple[str, ...]
    linked: Mapping[str, Selection] = field(default_factory=dict)

    @property
    def omitted(self) -> tuple[str, ...]:
        """As an ``omit``: a member with braces is not omitted, its linked entities are
        projected."""
        return tuple(name for name in self.names if name not in self.linked)

    @property
    def depth(self) -> int:
        """How many Relationship hops the selection reaches (0: no braces)."""
        return (
            1 + max((child.depth for child in self.linked.values()), default=0)
            if self.linked
            else 0
        )


def parse_selection(
    parameter: str, text: str | None, *, separators: str = ",|"
) -> Selection | None:
    """Parse ``attrs`` (separator ``,``) or ``pick``/``omit`` (``,`` or ``|``); None if absent.

    Raises BadRequestDataError (400) on an empty list, an empty or repeated separator, an
    unclosed or doubled brace, an empty ``{}`` or a character no member name can contain.
    """
    if text is None:
        return None
    parser = _Parser(parameter, text, separators)
    selection = parser.selection(closing=None)
    return selection


class _Parser:
    def __init__(self, parameter: str, text: str, separators: str) -> None:
        self.parameter = parameter
        self.text = text
        self.separators = separators
        self.position = 0

    def error(self, message: str) -> BadRequestDataError:
        return BadRequestDataError(
            f"invalid {self.parameter} {self.text!r} at character {self.position + 1}: {message}"
        )

    def selection(self, closing: str | None) -> Selection:
        names: list[str] = []
        linked: dict[str, Selection] = {}
        while True:
            name = self.name()
            if name not in names:
                names.append(name)
            if self.peek() == "{":
                self.position += 1
                linked[name] = self.selection(closing="}")
            char = self.peek()
            if char is None:
                if closing is not None:
                    raise self.error("a '{' is not closed")
                return Selection(tuple(names), linked)
            if char == closing:
                self.position += 1
                return Selection(tuple(names), linked)
            if char not in self.separators:
                raise self.error(f"unexpected {char!r}")
            self.position += 1

    def name(self) -> str:
        match = _NAME.match(self.text, self.position)
        if match is None or not match.group():
            char = self.peek()
            raise self.error(
                "expected a member name" + ("" if char is None else f", found {char!r}")
            )
        self.position = match.end()
        return match.group()

    def peek(self) -> str | None:
        return self.text[self.position] if self.position < len(self.text) else None


def check_join(
    join: str | None, join_level: str | None, *selections: Selection | None
) -> tuple[str | None, int]:
    """Validate ``join``/``joinLevel`` against the selections; ``(join or None, level)``.

    ``join`` is ``flat``, ``inline`` or ``@none`` (no retrieval); ``joinLevel`` a positive
    integer (default 1). A selection reaching linked Entities needs a join, and may not
    reach deeper than ``joinLevel``.
    """
    if join is not None and join not in {"flat", "inline", "@none"}:
        raise BadRequestDataError(f"join must be flat, inline or @none, not {join!r}")
    level = 1
    if join_level is not None:
        if not join_level.isdigit() or not join_level.isascii() or int(join_level) < 1:
            raise BadRequestDataError(f"joinLevel must be a positive integer, not {join_level!r}")
        level = int(join_level)
        if level > MAX_JOIN_LEVEL:
            raise BadRequestDataError(f"joinLevel is at most {MAX_JOIN_LEVEL}")
    active = join if join in {"flat", "inline"} else None
    depth = max((s.depth for s in selections if s is not None), default=0)
    if depth and active is None:
        raise BadRequestDataError(
            "a Linked Entity selection (member{...}) needs join=flat or join=inline"
        )
    if depth > level:
        raise BadRequestDataError(
            f"the selection reaches {depth} Relationship hops; joinLevel allows {level}"
        )
    return active, level
