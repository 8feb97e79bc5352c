"""``q`` syntax trees → SQLAlchemy boolean clauses over ``entities`` (all filtering in SQL).

Each term becomes an ``EXISTS`` over the entity's ``attributes`` rows (one sub-query per term),
so an attribute with several datasetIds matches when any of its instances does. Values
are bound parameters, never SQL text. Semantics (ETSI GS CIM 009 §4.9):

- ``==`` matches a target of the same type with the same value, or an array target that
  contains it; a range matches ``low <= target <= high``; a list matches any member.
  A LanguageProperty matches through any of its languages (``name[en]`` through one).
- ``!=`` and ``!~=`` match an existing target for which ``==`` / ``~=`` does not hold
  (a target of another type is "not equal").
- ``>`` ``>=`` ``<`` ``<=`` compare numbers numerically, strings in the database's
  collation order, dates and date-times as instants; a Relationship never matches them.
- ``~=`` matches string targets against a POSIX regular expression (PostgreSQL ``~``).
  An invalid pattern makes PostgreSQL raise SQLSTATE 2201B (invalid_regular_expression),
  which the caller reports as BadRequestData.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import String, and_, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.query.nodes import (
    And,
    Boolean,
    Comparison,
    Date,
    DateTime,
    Exists,
    Expression,
    Number,
    Operator,
    Or,
    Pattern,
    Range,
    Scalar,
    Text,
    Time,
    Uri,
    ValueList,
)
from cityos_knowledge.query.q_parser import ENTITY_TIMESTAMPS
from cityos_knowledge.query.shapes import bound
from cityos_knowledge.query.targets import Expander, Target, attribute_exists, json_text, resolve
from cityos_knowledge.store.tables import entities, text_index_prefix

Condition = ColumnElement[bool]


def q_condition(expression: Expression, expand: Expander) -> Condition:
    """The clause an entity row satisfies exactly when it matches ``expression``."""
    match expression:
        case And(terms):
            return and_(*(q_condition(term, expand) for term in terms))
        case Or(terms):
            return or_(*(q_condition(term, expand) for term in terms))
        case Exists(path, negated) if _is_entity_timestamp(path.attribute, path):
            present = (
                entities.c.deleted_at.is_not(None) if path.attribute == "deletedAt" else true()
            )
            return not_(present) if negated else present
        case Exists(path, negated):
            found = _attribute_exists(expression, expand, lambda _: true())
            return not_(found) if negated else found
        case Comparison(path, operator, value) if _is_entity_timestamp(path.attribute, path):
            column = _ENTITY_TIMESTAMP_COLUMNS[path.attribute]
            target = Target(present=column.is_not(None), json=None, instant=column)
            return and_(target.present, compare(target, operator, value))
        case Comparison(path, operator, value):
            return _attribute_exists(
                expression, expand, lambda target: compare(target, operator, value)
            )
    raise AssertionError(f"not a q expression: {expression!r}")


_ENTITY_TIMESTAMP_COLUMNS = {
    "createdAt": entities.c.created_at,
    "modifiedAt": entities.c.modified_at,
    "deletedAt": entities.c.deleted_at,
}


def _is_entity_timestamp(attribute: str, path: Any) -> bool:
    return attribute in ENTITY_TIMESTAMPS and not path.sub_attributes and not path.members


def _attribute_exists(
    term: Exists | Comparison, expand: Expander, condition: Callable[[Target], Condition]
) -> Condition:
    selects, target = resolve(term.path, expand)
    return attribute_exists(selects, target.present, condition(target))


def compare(
    target: Target, operator: Operator, value: Scalar | Range | ValueList | Pattern
) -> Condition:
    """``target operator value`` on one attribute row (the target is known to exist)."""
    if isinstance(value, Pattern):
        matched = _matches(target, value)
        return matched if operator is Operator.MATCHES else not_(func.coalesce(matched, false()))
    if operator is Operator.EQUAL:
        return _equal(target, value)
    if operator is Operator.UNEQUAL:
        return not_(func.coalesce(_equal(target, value), false()))
    assert not isinstance(value, Range | ValueList)  # the parser allows them with == and != only
    ordered = _ordered(target, operator, value)
    if target.relationship is not None:
        return and_(not_(target.relationship), ordered)
    return ordered


def _equal(target: Target, value: Scalar | Range | ValueList) -> Condition:
    if isinstance(value, Range):
        typed = _typed(target, value.low)
        return typed.between(_bound(value.low), _bound(value.high))
    if isinstance(value, ValueList):
        return or_(*(_equal(target, item) for item in value.values))
    if target.any_language:
        return _any_member(target, lambda text: text == _bound(value))
    if isinstance(value, Boolean):
        same = target.json == bound(value, _value, JSONB) if target.json is not None else false()
    elif isinstance(value, Text | Uri) and target.text_prefix_indexed:
        same = _indexed_text_equal(target.as_text(), _bound(value))
    else:
        same = _typed(target, value) == _bound(value)
    alternatives = [same]
    if target.json is not None and _json_scalar(value) is not None:
        alternatives.append(
            and_(
                func.jsonb_typeof(target.json) == "array",
                target.json.bool_op("@>")(bound(value, _json_array, JSONB)),
            )
        )
    if target.language_map is not None and isinstance(value, Text):
        alternatives.append(
            and_(target.language_map, _any_member(target, lambda text: text == _bound(value)))
        )
    return or_(*alternatives)


def _indexed_text_equal(text: ColumnElement[Any], value: ColumnElement[Any]) -> Condition:
    """``text = value``, plus the equality of their prefixes that ``attributes_name_text`` has.

    Equal strings have equal prefixes, so the added condition changes no answer. Ranges
    keep only the exact comparison: a prefix is not monotone in a linguistic collation
    (ADR 0019).
    """
    return and_(text_index_prefix(text) == text_index_prefix(value), text == value)


def _ordered(target: Target, operator: Operator, value: Scalar) -> Condition:
    compare_with = _ORDERING[operator]
    if target.any_language:
        return _any_member(target, lambda text: compare_with(text, _bound(value)))
    return compare_with(_typed(target, value), _bound(value))


_ORDERING: dict[Operator, Callable[[Any, Any], Condition]] = {
    Operator.GREATER: lambda left, right: left > right,
    Operator.GREATER_EQUAL: lambda left, right: left >= right,
    Operator.LESS: lambda left, right: left < right,
    Operator.LESS_EQUAL: lambda left, right: left <= right,
}


def _matches(target: Target, regex: Pattern) -> Condition:
    pattern = bound(regex, _regex, String())
    if target.any_language:
        return _any_member(target, lambda text: text.bool_op("~")(pattern))
    matched = target.as_text().bool_op("~")(pattern)
    if target.language_map is None:
        return matched
    return or_(
        matched, and_(target.language_map, _any_member(target, lambda t: t.bool_op("~")(pattern)))
    )


def _any_member(target: Target, predicate: Callable[[Any], Condition]) -> Condition:
    """Some value of the JSON object target (a language map) satisfies ``predicate``."""
    member = func.jsonb_each(target.json).table_valued("key", "value").alias()
    return exists(
        select(literal(1)).select_from(member).where(predicate(json_text(member.c.value)))
    )


def _typed(target: Target, value: Scalar) -> ColumnElement[Any]:
    """The target seen as the same type as ``value`` (NULL when it is of another type)."""
    match value:
        case Number():
            return target.as_number()
        case DateTime():
            return target.as_instant()
        case Date():
            return target.as_date()
        case Time():
            return target.as_time()
    return target.as_text()


def _bound(value: Scalar) -> ColumnElement[Any]:
    """``value`` as a typed bound parameter (its value read through ``shapes.bound``)."""
    match value:
        case Number():
            return bound(value, _float)
        case Text() | Uri():
            return bound(value, _value, String())
        case DateTime() | Date() | Boolean():
            return bound(value, _value)
        case Time():
            return bound(value, _naive_time)
    raise AssertionError(value)


# How parameters derive from value nodes: functions of the node alone (see ``shapes``).


def _value(node: Any) -> Any:
    return node.value


def _float(node: Number) -> float:
    return float(node.value)


def _naive_time(node: Time) -> Any:
    return node.value.replace(tzinfo=None)


def _regex(node: Pattern) -> str:
    return node.regex


def _json_array(node: Scalar) -> list[Any]:
    return [_json_scalar(node)]


def _json_scalar(value: Scalar) -> Any:
    """``value`` as it would appear inside a JSON array value, if it can."""
    match value:
        case Number(number):
            return int(number) if number == number.to_integral_value() else float(number)
        case Text(text) | Uri(text):
            return text
        case Boolean(flag):
            return flag
    return None
