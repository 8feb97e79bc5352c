"""Which notification triggers an entity change fires, and entity type selections."""

from __future__ import annotations

from typing import Any

import pytest

from cityos_interoperability.subscriptions.matcher import Change, TypeSelection, fired_triggers

ALL = frozenset(
    {
        "entityCreated",
        "entityUpdated",
        "entityDeleted",
        "attributeCreated",
        "attributeUpdated",
        "attributeDeleted",
    }
)
DEFAULT = frozenset({"attributeCreated", "attributeUpdated"})


def entity(**attributes: Any) -> dict[str, Any]:
    return {
        "id": "urn:x:1",
        "type": ["T"],
        **{n: {"type": "Property", "value": v} for n, v in attributes.items()},
    }


def change(
    kind: str, attributes: set[str], now: dict[str, Any] | None, before: dict[str, Any] | None
) -> Change:
    return Change(None, "urn:x:1", frozenset({"T"}), kind, frozenset(attributes), now, before)


def test_creation_fires_entity_and_attribute_created() -> None:
    fired = fired_triggers(change("created", {"a", "b"}, entity(a=1, b=2), None), ALL, None)
    assert fired is not None
    assert fired.triggers == {"entityCreated", "attributeCreated"}
    assert fired.attributes == {"a", "b"}


def test_an_update_tells_new_changed_and_removed_attributes_apart() -> None:
    update = change("updated", {"a", "b", "c"}, entity(a=2, b=1), entity(a=1, c=3))
    assert (update.created, update.updated, update.deleted) == ({"b"}, {"a"}, {"c"})
    fired = fired_triggers(update, ALL, None)
    assert fired is not None
    assert fired.triggers == {
        "entityUpdated",
        "attributeCreated",
        "attributeUpdated",
        "attributeDeleted",
    }


def test_without_the_previous_entity_touched_attributes_count_as_updated() -> None:
    update = change("updated", {"a"}, entity(a=2), None)
    assert update.updated == {"a"} and not update.created


def test_watched_attributes_limit_what_fires() -> None:
    update = change("updated", {"a"}, entity(a=2, b=1), entity(a=1, b=1))
    assert fired_triggers(update, DEFAULT, frozenset({"b"})) is None
    fired = fired_triggers(update, DEFAULT, frozenset({"a", "b"}))
    assert fired is not None and fired.attributes == {"a"}


def test_default_triggers_ignore_deletions() -> None:
    removal = change("attributes_deleted", {"a"}, entity(b=1), entity(a=1, b=1))
    assert fired_triggers(removal, DEFAULT, None) is None
    fired = fired_triggers(removal, frozenset({"attributeDeleted"}), None)
    assert fired is not None and fired.attributes == {"a"}


def test_entity_deletion_fires_entity_deleted_and_attribute_deleted_for_watched() -> None:
    deletion = change("deleted", set(), None, entity(a=1, b=2))
    assert fired_triggers(deletion, DEFAULT, None) is None
    fired = fired_triggers(deletion, frozenset({"attributeDeleted"}), frozenset({"b"}))
    assert fired is not None and fired.attributes == {"b"}
    only_entity = fired_triggers(deletion, frozenset({"entityDeleted"}), None)
    assert only_entity is not None and only_entity.triggers == {"entityDeleted"}


def test_replace_deletes_attributes_left_out() -> None:
    replaced = change("replaced", {"b"}, entity(b=1), entity(a=1, b=0))
    assert replaced.deleted == {"a"} and replaced.updated == {"b"}


@pytest.mark.parametrize(
    ("selection", "types", "expected"),
    [
        ("A", {"A"}, True),
        ("A", {"B"}, False),
        ("A,B", {"B"}, True),
        ("A|B", {"C"}, False),
        ("A;B", {"A"}, False),
        ("A;B", {"A", "B"}, True),
        ("(A;B)|C", {"C"}, True),
        ("(A;B)|C", {"B"}, False),
        ("A;(B,C)", {"A", "C"}, True),
    ],
)
def test_type_selections(selection: str, types: set[str], expected: bool) -> None:
    assert TypeSelection(selection, str.upper).matches(frozenset(types)) is expected
