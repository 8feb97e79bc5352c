"""A change as a subscription's data scope lets it see it (pure, no database)."""

from __future__ import annotations

from typing import Any

from cityos_interoperability.subscriptions.access import (
    scope_document,
    scope_of,
    visible_change,
)
from cityos_interoperability.subscriptions.matcher import Change
from cityos_knowledge.service import DataAccess
from cityos_support.security.policy import DataScope

PERSON, METER = "https://example.org/Person", "https://example.org/WaterMeter"
NAME, AGE = "https://example.org/name", "https://example.org/age"
ACCESS = DataAccess(
    tenants=None, readable=frozenset({PERSON}), writable=None, restricted={PERSON: frozenset({AGE})}
)


def entity(entity_type: str, **attributes: Any) -> dict[str, Any]:
    return {
        "id": "urn:ngsi-ld:X:1",
        "type": [entity_type],
        **{name: {"type": "Property", "value": value} for name, value in attributes.items()},
    }


def change(kind: str, entity_type: str, touched: set[str], **states: Any) -> Change:
    return Change(
        tenant=None,
        entity_id="urn:ngsi-ld:X:1",
        types=frozenset({entity_type}),
        kind=kind,
        attributes=frozenset(touched),
        entity=states.get("now"),
        previous=states.get("before"),
    )


def test_only_restricting_scopes_are_kept() -> None:
    assert scope_document(DataScope(tenants=None, readable_types=None, writable_types=None)) is None
    scope = DataScope(
        readable_types=frozenset({"Person"}), attributes={"Person": frozenset({"age"})}
    )
    kept = scope_of(scope_document(scope))
    assert kept is not None
    assert kept.readable_types == frozenset({"Person"})
    assert kept.attributes == {"Person": frozenset({"age"})}
    assert scope_of(None) is None


def test_unrestricted_access_leaves_the_change_as_it_is() -> None:
    original = change("updated", METER, {NAME}, now=entity(METER, **{NAME: "a"}))
    assert visible_change(original, None) is original


def test_entities_of_unreadable_types_are_dropped() -> None:
    assert visible_change(change("created", METER, {NAME}, now=entity(METER)), ACCESS) is None


def test_hidden_attributes_are_removed_from_every_part_of_the_change() -> None:
    before = entity(PERSON, **{NAME: "Ana", AGE: 40})
    now = entity(PERSON, **{NAME: "Eva", AGE: 41})
    visible = visible_change(change("updated", PERSON, {NAME, AGE}, now=now, before=before), ACCESS)
    assert visible is not None
    assert visible.attributes == {AGE} and visible.updated == {AGE}
    assert visible.entity is not None and NAME not in visible.entity and AGE in visible.entity
    assert visible.previous is not None and NAME not in visible.previous


def test_a_change_of_hidden_attributes_only_is_not_seen() -> None:
    before = entity(PERSON, **{NAME: "Ana", AGE: 40})
    now = entity(PERSON, **{NAME: "Eva", AGE: 40})
    assert visible_change(change("updated", PERSON, {NAME}, now=now, before=before), ACCESS) is None
    # Creating or deleting a readable entity is visible even if all its attributes are hidden.
    created = visible_change(
        change("created", PERSON, {NAME}, now=entity(PERSON, **{NAME: 1})), ACCESS
    )
    assert created is not None and created.created == frozenset()
