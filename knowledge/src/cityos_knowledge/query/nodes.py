"""The syntax tree of the NGSI-LD query language (ETSI GS CIM 009 §4.9).

Pure values, no database knowledge: the parser builds them, the SQL translator walks them,
and tests compare them. Attribute names are kept exactly as the user wrote them; expanding
compact names to IRIs against an ``@context`` happens at translation time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Generic, TypeVar

T = TypeVar("T")

#: Sub-attribute names that address an attribute's metadata rather than a nested attribute.
TIMESTAMP_MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "deletedAt"})
METADATA_MEMBERS = TIMESTAMP_MEMBERS | {"unitCode", "datasetId", "lang"}


@dataclass(frozen=True, slots=True)
class AttributePath:
    """``attribute(.subAttribute)*([member(.member)*])*`` as written in a query term.

    ``attribute`` is the entity's attribute; ``sub_attributes`` walk properties of
    properties (or end in a metadata member such as ``observedAt``); ``members`` address a
    key inside the attribute's value — a compound JSON value or a LanguageProperty's
    language map (``name[en]``, ``name[*]``).
    """

    attribute: str
    sub_attributes: tuple[str, ...] = ()
    members: tuple[str, ...] = ()

    @property
    def metadata(self) -> str | None:
        """The metadata member the path ends in (``observedAt``, ``unitCode``…), if any."""
        if self.sub_attributes and not self.members:
            last = self.sub_attributes[-1]
            if last in METADATA_MEMBERS:
                return last
        return None

    def __str__(self) -> str:
        text = ".".join((self.attribute, *self.sub_attributes))
        return text + "".join(f"[{member}]" for member in self.members)


@dataclass(frozen=True, slots=True)
class Number:
    value: Decimal


@dataclass(frozen=True, slots=True)
class Text:
    """A string; ``quoted`` is false for the bare words some clients send (``a==red``)."""

    value: str
    quoted: bool = True


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool


@dataclass(frozen=True, slots=True)
class DateTime:
    """An instant, always timezone-aware (a value written without an offset is UTC)."""

    value: datetime


@dataclass(frozen=True, slots=True)
class Date:
    value: date


@dataclass(frozen=True, slots=True)
class Time:
    value: time


@dataclass(frozen=True, slots=True)
class Uri:
    """An unquoted URI, the usual way to name a Relationship's object."""

    value: str


#: What the grammar calls ComparableValue: usable with every comparison operator.
Comparable = Number | Text | DateTime | Date | Time
#: A single value: comparable ones plus booleans and URIs (equality only).
Scalar = Comparable | Boolean | Uri


@dataclass(frozen=True, slots=True)
class Range:
    """``low..high``, both ends included; only after ``==`` or ``!=``."""

    low: Comparable
    high: Comparable


@dataclass(frozen=True, slots=True)
class ValueList:
    """``a,b,c``: equal to any of them (``==``) or to none of them (``!=``)."""

    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Pattern:
    """The regular expression after ``~=`` or ``!~=`` (POSIX ARE as PostgreSQL runs it)."""

    regex: str


class Operator(enum.Enum):
    EQUAL = "=="
    UNEQUAL = "!="
    GREATER = ">"
    GREATER_EQUAL = ">="
    LESS = "<"
    LESS_EQUAL = "<="
    MATCHES = "~="
    NOT_MATCHES = "!~="

    @property
    def is_ordering(self) -> bool:
        return self in _ORDERING

    @property
    def is_pattern(self) -> bool:
        return self in (Operator.MATCHES, Operator.NOT_MATCHES)


_ORDERING = frozenset(
    {Operator.GREATER, Operator.GREATER_EQUAL, Operator.LESS, Operator.LESS_EQUAL}
)


@dataclass(frozen=True, slots=True)
class Comparison:
    """``path op value``; the value's shape is checked against the operator by the parser."""

    path: AttributePath
    operator: Operator
    value: Scalar | Range | ValueList | Pattern


@dataclass(frozen=True, slots=True)
class Exists:
    """``path`` alone (the target element exists) or ``!path`` (it does not)."""

    path: AttributePath
    negated: bool = False


@dataclass(frozen=True, slots=True)
class And(Generic[T]):
    """Every term holds (``;``)."""

    terms: tuple[T | And[T] | Or[T], ...]


@dataclass(frozen=True, slots=True)
class Or(Generic[T]):
    """At least one term holds (``|``, and ``,`` outside ``q``)."""

    terms: tuple[T | And[T] | Or[T], ...]


#: One query-language term, and a whole ``q`` expression.
Term = Comparison | Exists
Expression = Term | And[Term] | Or[Term]


def attribute_names(expression: Expression) -> frozenset[str]:
    """The (top-level) attribute names an expression tests, as written."""
    if isinstance(expression, Comparison | Exists):
        return frozenset({expression.path.attribute})
    names: set[str] = set()
    for term in expression.terms:
        names |= attribute_names(term)
    return frozenset(names)
