"""Which subscriptions a change concerns, and which notification triggers it fires (pure).

A ``knowledge.entities.changed.v1`` event says what kind of change happened, which
attributes it touched, and (when the knowledge layer fills them) the entity after and
before it, all in expanded form. From that this module derives the attributes created,
updated and deleted (5.8.6), matches them against a subscription's entity selectors
(type selection, id, idPattern), ``watchedAttributes`` and ``notificationTrigger``.
``q``, ``scopeQ`` and ``geoQ`` are not evaluated here: they run as SQL through the knowledge
facade (:mod:`cityos_interoperability.subscriptions.dispatcher`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Entity members that are not attributes.
ENTITY_MEMBERS = frozenset(
    {"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"}
)


def attribute_names(entity: Mapping[str, Any] | None) -> frozenset[str]:
    if not entity:
        return frozenset()
    return frozenset(name for name in entity if name not in ENTITY_MEMBERS)


@dataclass(frozen=True)
class Change:
    """One entity change as the notifier sees it (names expanded, tenant None = default)."""

    tenant: str | None
    entity_id: str
    types: frozenset[str]
    kind: str
    attributes: frozenset[str]
    entity: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    created: frozenset[str] = field(init=False)
    updated: frozenset[str] = field(init=False)
    deleted: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        created, updated, deleted = _attribute_changes(self)
        object.__setattr__(self, "created", created)
        object.__setattr__(self, "updated", updated)
        object.__setattr__(self, "deleted", deleted)


def _attribute_changes(change: Change) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    now = attribute_names(change.entity)
    before = attribute_names(change.previous) if change.previous is not None else None
    if change.kind == "created":
        return now | change.attributes, frozenset(), frozenset()
    if change.kind == "deleted":
        return frozenset(), frozenset(), before or frozenset()
    if change.kind == "attributes_deleted":
        return frozenset(), frozenset(), change.attributes
    created: set[str] = set()
    updated: set[str] = set()
    deleted: set[str] = set()
    for name in change.attributes:
        if change.entity is not None and name not in now:
            deleted.add(name)
        elif before is not None and name not in before:
            created.add(name)
        else:
            updated.add(name)
    if change.kind == "replaced" and before is not None:
        deleted |= before - now
    return frozenset(created), frozenset(updated), frozenset(deleted)


# -- entity type selections (4.17) ---------------------------------------------------------

_TYPE_TOKEN = re.compile(r"\s*([(),;|]|[^(),;|\s]+)")


class TypeSelection:
    """An entity type selection: names joined by ``,``/``|`` (or), ``;`` (and), parentheses.

    The syntax was checked by the knowledge query parser when the subscription was
    created; this evaluates it against one entity's types.
    """

    def __init__(self, text: str, expand: Callable[[str], str]) -> None:
        self.text = text
        self._tokens = [match.group(1) for match in _TYPE_TOKEN.finditer(text)]
        self.names = frozenset(
            expand(token) for token in self._tokens if token not in {"(", ")", ",", ";", "|"}
        )
        self._expand = expand
        self.simple = len(self._tokens) == 1

    def matches(self, types: frozenset[str]) -> bool:
        if self.simple:
            return next(iter(self.names)) in types
        _, result = self._or(0, types)
        return result

    def _or(self, position: int, types: frozenset[str]) -> tuple[int, bool]:
        position, result = self._and(position, types)
        while position < len(self._tokens) and self._tokens[position] in {",", "|"}:
            position, other = self._and(position + 1, types)
            result = result or other
        return position, result

    def _and(self, position: int, types: frozenset[str]) -> tuple[int, bool]:
        position, result = self._factor(position, types)
        while position < len(self._tokens) and self._tokens[position] == ";":
            position, other = self._factor(position + 1, types)
            result = result and other
        return position, result

    def _factor(self, position: int, types: frozenset[str]) -> tuple[int, bool]:
        item = self._tokens[position] if position < len(self._tokens) else ")"
        if item == "(":
            position, result = self._or(position + 1, types)
            return position + 1, result  # past ")"
        return position + 1, self._expand(item) in types


@dataclass(frozen=True)
class Selector:
    """An entity selector with its names expanded."""

    types: TypeSelection
    entity_id: str | None
    pattern: re.Pattern[str] | None

    def matches(self, entity_id: str, types: frozenset[str]) -> bool:
        if self.entity_id is not None and entity_id != self.entity_id:
            return False
        if self.pattern is not None and not self.pattern.search(entity_id):
            return False
        return self.types.matches(types)


@dataclass(frozen=True)
class Fired:
    """What a change fired for one subscription."""

    change: Change
    triggers: frozenset[str]
    #: The attributes the notification is about (created, updated or deleted ones).
    attributes: frozenset[str]


def fired_triggers(
    change: Change,
    triggers: frozenset[str],
    watched: frozenset[str] | None,
) -> Fired | None:
    """The triggers ``change`` fires for a subscription (None when it fires none)."""

    def relevant(names: frozenset[str]) -> frozenset[str]:
        return names & watched if watched is not None else names

    fired: set[str] = set()
    about: set[str] = set()
    if change.kind == "created" and "entityCreated" in triggers:
        fired.add("entityCreated")
    if change.kind == "deleted" and "entityDeleted" in triggers:
        fired.add("entityDeleted")
    for trigger, names in (
        ("attributeCreated", change.created),
        ("attributeUpdated", change.updated),
        ("attributeDeleted", change.deleted),
    ):
        matching = relevant(names)
        if trigger in triggers and matching:
            fired.add(trigger)
            about |= matching
    touched = relevant(change.created | change.updated | change.deleted)
    updated_entity = change.kind not in ("created", "deleted")
    if updated_entity and "entityUpdated" in triggers and (touched or watched is None):
        fired.add("entityUpdated")
        about |= touched
    if not fired:
        return None
    return Fired(change, frozenset(fired), frozenset(about))
