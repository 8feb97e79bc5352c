"""Where a query-language attribute path points in the store, as SQL expressions.

A path such as ``temperature``, ``temperature.accuracy``, ``temperature.observedAt`` or
``address[city]`` resolves, on one row of ``attributes`` (an alias per query term), to a
:class:`Target`: the JSON of the target value and, where the store has them, typed columns
(``value_number``, ``value_text``, ``observed_at``…) that keep comparisons on indexes.

Typing rules (§4.9): a number compares only with numbers, a string only with strings, a
date-time only with strings that are ISO 8601 date-times (an NGSI-LD ``DateTime`` literal
is stored with its ``@value`` in ``value_text``); anything else simply does not match.
Text that only looks like a date never raises: it is checked by PostgreSQL's own
``jsonb_path`` datetime reader in silent mode before any cast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    Text,
    Time,
    any_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH, TIMESTAMP
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.query.nodes import AttributePath
from cityos_knowledge.store.tables import DEFAULT_DATASET, attributes, entities

Expander = Callable[[str], str]

#: The members that hold an attribute's value, whatever its type (see ``tables``).
_MAIN_MEMBERS = ("value", "object", "languageMap", "vocab", "json", "valueList", "objectList")

_ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:\d{2})?)?$"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
_ISO_TIME = r"^\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}(:\d{2})?)?$"
_HAS_OFFSET = r"([Zz]|[+-]\d{2}(:\d{2})?)$"


@dataclass(frozen=True, slots=True)
class Target:
    """The SQL view of a path's target on one ``attributes`` row.

    ``present`` holds when the target exists on the row; ``json`` is the target value as
    JSON (``None`` for metadata that only has a typed column); ``number``/``text``/``instant``
    are typed views or ``None`` when this target has no such column (then they are derived
    from ``json``); ``relationship`` holds when the target is a Relationship's object, which
    ordering operators never match; ``language_map`` holds when the target is a
    LanguageProperty's map (compared through its values); ``text_prefix_indexed`` holds when
    ``text`` is ``value_text``, whose index covers only a prefix (``text_index_prefix``).
    """

    present: ColumnElement[bool]
    json: ColumnElement[Any] | None
    number: ColumnElement[Any] | None = None
    text: ColumnElement[Any] | None = None
    instant: ColumnElement[Any] | None = None
    relationship: ColumnElement[bool] | None = None
    language_map: ColumnElement[bool] | None = None
    any_language: bool = False
    text_prefix_indexed: bool = False

    def as_number(self) -> ColumnElement[Any]:
        if self.number is not None:
            return self.number
        return json_number(self._json())

    def as_text(self) -> ColumnElement[Any]:
        if self.text is not None:
            return self.text
        if self.instant is not None:
            return func.to_char(
                func.timezone(literal("UTC"), self.instant),
                literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            )
        return json_text(self._json())

    def as_instant(self) -> ColumnElement[Any]:
        if self.instant is not None:
            return self.instant
        return text_as_instant(self.as_text())

    def as_date(self) -> ColumnElement[Any]:
        return _checked_cast(self.as_text(), _ISO_DATE, Date())

    def as_time(self) -> ColumnElement[Any]:
        return _checked_cast(self.as_text(), _ISO_TIME, Time())

    def _json(self) -> ColumnElement[Any]:
        if self.json is None:
            return cast(null(), JSONB)
        return self.json


def json_number(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON number as ``float8``; NULL for anything else (never a cast error)."""
    return case((func.jsonb_typeof(value) == "number", cast(value, Float(precision=53))))


def json_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON string (or the ``@value`` of a typed literal) as text; NULL otherwise."""
    kind = func.jsonb_typeof(value)
    return case(
        (kind == "string", value.op("#>>")(literal([], ARRAY(Text)))),
        (kind == "object", value.op("->>")(literal("@value"))),
    )


def text_as_instant(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """An ISO 8601 date-time string as ``timestamptz`` (UTC when it has no offset)."""
    with_offset = case(
        (text.bool_op("~")(literal(_HAS_OFFSET)), text), else_=text.concat(literal("+00:00"))
    )
    return _checked_cast(with_offset, _ISO_DATETIME, TIMESTAMP(timezone=True), checked=text)


def _checked_cast(
    text: ColumnElement[Any],
    pattern: str,
    to: Any,
    *,
    checked: ColumnElement[Any] | None = None,
) -> ColumnElement[Any]:
    """Cast ``text`` when it has the ISO form ``pattern`` and is a real calendar value."""
    form = (checked if checked is not None else text).bool_op("~")(literal(pattern))
    readable = func.jsonb_path_exists(
        func.to_jsonb(func.regexp_replace(text, literal("[Zz]$"), literal("+00:00"))),
        cast(literal("$.datetime()"), JSONPATH),
        literal({}, JSONB),
        literal(True),
    )
    return case((form & readable, cast(text, to)))


def attribute_exists(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """``EXISTS`` an ``attributes`` row of the current entity satisfying ``conditions``.

    The sub-query correlates to ``entities`` only, so the clause keeps its meaning when the
    caller's statement itself reads ``attributes``.
    """
    return exists(
        select(literal(1))
        .select_from(attributes)
        .where(attributes.c.entity_id == entities.c.id, *conditions)
        .correlate(entities)
    )


def resolve(path: AttributePath, expand: Expander) -> tuple[ColumnElement[bool], Target]:
    """The ``attributes`` row condition selecting the path's attribute, and its target."""
    columns = attributes.c
    selects = columns.name == expand(path.attribute)
    metadata = path.metadata
    if not path.sub_attributes:
        return selects, _value_target(columns, path.members)
    if metadata is not None and len(path.sub_attributes) == 1:
        return selects, _metadata_target(columns, metadata)
    names = [expand(name) for name in path.sub_attributes]
    if metadata is not None:
        names[-1] = metadata
        member = columns.body.op("#>")(literal(names, ARRAY(Text)))
        return selects, Target(present=member.is_not(None), json=member)
    sub_attribute = columns.body.op("#>")(literal(names, ARRAY(Text)))
    value = func.coalesce(*(sub_attribute.op("->")(literal(key)) for key in _MAIN_MEMBERS))
    return selects, _members_of(value, path.members, sub_attribute.op("->>")(literal("type")))


def _value_target(columns: Any, members: tuple[str, ...]) -> Target:
    if members:
        return _members_of(columns.value, members, columns.kind)
    return Target(
        present=columns.value.is_not(None),
        json=columns.value,
        number=columns.value_number,
        text=columns.value_text,
        relationship=_is_relationship(columns.kind),
        language_map=columns.kind == "LanguageProperty",
        text_prefix_indexed=True,
    )


def _members_of(value: ColumnElement[Any], members: tuple[str, ...], kind: Any) -> Target:
    if not members:
        return Target(
            present=value.is_not(None),
            json=value,
            relationship=_is_relationship(kind),
            language_map=kind == "LanguageProperty",
        )
    if members == ("*",):
        return Target(present=func.jsonb_typeof(value) == "object", json=value, any_language=True)
    member = value.op("#>")(literal(list(members), ARRAY(Text)))
    return Target(present=member.is_not(None), json=member)


def _is_relationship(kind: ColumnElement[Any]) -> ColumnElement[bool]:
    # An array parameter, not IN (...): SQLAlchemy re-renders "expanding" IN lists on every
    # execution.
    return kind == any_(literal(["Relationship", "ListRelationship"], ARRAY(Text)))


def _metadata_target(columns: Any, metadata: str) -> Target:
    """``attribute.observedAt`` and friends: the attribute row's own columns."""
    if metadata in ("observedAt", "createdAt", "modifiedAt"):
        column = {
            "observedAt": columns.observed_at,
            "createdAt": columns.created_at,
            "modifiedAt": columns.modified_at,
        }[metadata]
        return Target(present=column.is_not(None), json=None, instant=column)
    if metadata == "unitCode":
        return Target(present=columns.unit_code.is_not(None), json=None, text=columns.unit_code)
    if metadata == "datasetId":
        return Target(
            present=columns.dataset_id != DEFAULT_DATASET, json=None, text=columns.dataset_id
        )
    # deletedAt is never set on a current attribute; lang lives in the body.
    member = columns.body.op("->")(literal(metadata))
    return Target(present=member.is_not(None), json=member)
