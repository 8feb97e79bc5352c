"""Notification-only rendering: NGSI-LD Null for deletions, previous values, datasetIds."""

from __future__ import annotations

from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.representation import Compactor, Representation
from cityos_interoperability.subscriptions.rendering import (
    deleted_instances,
    null_attribute,
    only_datasets,
    with_previous,
)

NULL = "urn:ngsi-ld:null"
FRENCH = "urn:ngsi-ld:Dataset:fr"


class SameNames(TermMap):
    """A term map that leaves every name as it is (no @context needed)."""

    def __init__(self) -> None:
        pass

    def expand(self, term: str) -> str:
        return term

    def compact(self, iri: str) -> str:
        return iri


def compactor() -> Compactor:
    return Compactor(SameNames(), Representation())


def test_null_keeps_the_kind_and_the_dataset() -> None:
    assert null_attribute({"type": "Relationship", "object": "urn:x"}) == {
        "type": "Relationship",
        "object": NULL,
    }
    assert null_attribute({"type": "LanguageProperty", "languageMap": {"fr": "x"}}) == {
        "type": "LanguageProperty",
        "languageMap": {"@none": NULL},
    }
    nulled = null_attribute({"type": "Property", "value": 1, "datasetId": FRENCH}, "2026-01-01Z")
    assert nulled == {
        "type": "Property",
        "value": NULL,
        "datasetId": FRENCH,
        "deletedAt": "2026-01-01Z",
    }


def test_deleting_one_instance_keeps_the_others() -> None:
    default = {"type": "Property", "value": "a"}
    french = {"type": "Property", "value": "b", "datasetId": FRENCH}
    assert deleted_instances(default, [default, french], None) == [
        default,
        {"type": "Property", "value": NULL, "datasetId": FRENCH},
    ]
    assert deleted_instances(None, [default, french], None) == {"type": "Property", "value": NULL}


def test_previous_values_by_attribute_kind() -> None:
    rendered = {"type": "Relationship", "object": "urn:new"}
    shown = with_previous(rendered, {"type": "Relationship", "object": "urn:old"}, compactor())
    assert shown == {"type": "Relationship", "object": "urn:new", "previousObject": "urn:old"}
    language = with_previous(
        {"type": "LanguageProperty", "languageMap": {"fr": "b"}},
        {"type": "LanguageProperty", "languageMap": {"fr": "a"}},
        compactor(),
    )
    assert language["previousLanguageMap"] == {"fr": "a"}
    concise = with_previous(5, {"type": "Property", "value": 4}, compactor())
    assert concise == {"value": 5, "previousValue": 4}


def test_only_the_chosen_datasets_are_kept() -> None:
    entity = {
        "id": "urn:x:1",
        "type": ["T"],
        "name": [
            {"type": "Property", "value": "a"},
            {"type": "Property", "value": "b", "datasetId": FRENCH},
        ],
        "height": {"type": "Property", "value": 3},
    }
    assert only_datasets(entity, frozenset({FRENCH})) == {
        "id": "urn:x:1",
        "type": ["T"],
        "name": {"type": "Property", "value": "b", "datasetId": FRENCH},
    }
    assert only_datasets(entity, frozenset({"@none"}))["height"] == {"type": "Property", "value": 3}
