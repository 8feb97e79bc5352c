"""Client entities ↔ the expanded form the knowledge facade stores, in every format."""

from __future__ import annotations

from typing import Any

import pytest

from cityos_interoperability.ngsild.errors import BadRequestDataError, InvalidRequestError
from cityos_interoperability.ngsild.jsonld.context import ContextResolver, TermMap
from cityos_interoperability.ngsild.jsonld.documents import (
    ContextDocumentLoader,
    core_context_url,
)
from cityos_interoperability.ngsild.jsonld.expansion import Expander
from cityos_interoperability.ngsild.representation import (
    Compactor,
    Representation,
    choose_language,
    parse_options,
)

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = NGSI_LD + "default-context/"
EX = "https://example.org/"

USER_CONTEXT = {
    "brandName": EX + "brandName",
    "Vehicle": EX + "Vehicle",
    "isParked": EX + "isParked",
}


@pytest.fixture(scope="module")
def terms() -> TermMap:
    resolver = ContextResolver(ContextDocumentLoader(), core_context_url("1.8"))
    return resolver.resolve(USER_CONTEXT)


VEHICLE: dict[str, Any] = {
    "id": "urn:ngsi-ld:Vehicle:A1",
    "type": "Vehicle",
    "brandName": {"type": "Property", "value": "Mercedes"},
    "speed": {
        "type": "Property",
        "value": 80,
        "observedAt": "2024-01-01T12:00:00Z",
        "unitCode": "KMH",
        "accuracy": {"type": "Property", "value": 0.5},
    },
    "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:Parking:P1"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.5, 41.2]}},
    "name": {"type": "LanguageProperty", "languageMap": {"en": "Car", "fr": "Voiture"}},
    "category": {"type": "VocabProperty", "vocab": "Sedan"},
}


def test_expansion_uses_iris_for_names_types_and_vocab(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    assert expanded["type"] == [EX + "Vehicle"]
    assert expanded[EX + "brandName"] == {"type": "Property", "value": "Mercedes"}
    assert expanded[DEFAULT + "speed"][DEFAULT + "accuracy"] == {"type": "Property", "value": 0.5}
    assert expanded[DEFAULT + "speed"]["unitCode"] == "KMH"
    assert expanded[NGSI_LD + "location"]["value"]["coordinates"] == [8.5, 41.2]
    assert expanded[DEFAULT + "category"]["vocab"] == DEFAULT + "Sedan"


def test_normalized_round_trip_gives_back_what_was_sent(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    assert Compactor(terms, Representation()).entity(expanded) == VEHICLE


def test_other_context_sees_full_iris(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    core = ContextResolver(ContextDocumentLoader(), core_context_url("1.8")).core
    shown = Compactor(core, Representation()).entity(expanded)
    assert shown["type"] == EX + "Vehicle"
    assert EX + "brandName" in shown
    assert "speed" in shown


def test_concise_input_is_understood(terms: TermMap) -> None:
    concise = {
        "id": "urn:ngsi-ld:Vehicle:A2",
        "type": "Vehicle",
        "brandName": "Seat",
        "speed": {"value": 10, "observedAt": "2024-01-01T00:00:00Z"},
        "isParked": {"object": "urn:ngsi-ld:Parking:P1"},
        "location": {"type": "Point", "coordinates": [1, 2]},
        "name": {"languageMap": {"en": "x"}},
        "tags": ["a", "b"],
    }
    expanded = Expander(terms).entity(concise)
    assert expanded[EX + "brandName"] == {"type": "Property", "value": "Seat"}
    assert expanded[EX + "isParked"]["type"] == "Relationship"
    assert expanded[NGSI_LD + "location"]["type"] == "GeoProperty"
    assert expanded[DEFAULT + "name"]["type"] == "LanguageProperty"
    assert expanded[DEFAULT + "tags"] == {"type": "Property", "value": ["a", "b"]}


def test_concise_and_key_values_output(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    concise = Compactor(terms, Representation(format="concise")).entity(expanded)
    assert concise["brandName"] == "Mercedes"
    assert concise["isParked"] == {"object": "urn:ngsi-ld:Parking:P1"}
    assert concise["speed"]["value"] == 80 and "type" not in concise["speed"]
    assert concise["location"] == {"type": "Point", "coordinates": [8.5, 41.2]}
    # what concise output gives back expands to the same entity
    assert Expander(terms).entity(concise) == expanded
    key_values = Compactor(terms, Representation(format="keyValues")).entity(expanded)
    assert key_values["speed"] == 80
    assert key_values["isParked"] == "urn:ngsi-ld:Parking:P1"
    assert key_values["category"] == {"vocab": "Sedan"}  # 4.5.4 (V1.9): typed members stay


def test_pick_omit_and_lang(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    picked = Compactor(terms, Representation(pick=frozenset({"id", "speed"}))).entity(expanded)
    assert set(picked) == {"id", "speed"}
    omitted = Compactor(terms, Representation(omit=frozenset({"speed", "type"}))).entity(expanded)
    assert "speed" not in omitted and "type" not in omitted and "brandName" in omitted
    french = Compactor(terms, Representation(lang="fr")).entity(expanded)
    assert french["name"] == {"type": "Property", "value": "Voiture", "lang": "fr"}
    fallback = Compactor(terms, Representation(lang="de")).entity(expanded)
    assert fallback["name"]["value"] in {"Car", "Voiture"}


def test_multiple_dataset_ids(terms: TermMap) -> None:
    entity = {
        "id": "urn:ngsi-ld:Vehicle:A3",
        "type": "Vehicle",
        "speed": [
            {"type": "Property", "value": 1},
            {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:gps"},
        ],
    }
    expanded = Expander(terms).entity(entity)
    assert len(expanded[DEFAULT + "speed"]) == 2
    assert Compactor(terms, Representation()).entity(expanded) == entity
    with pytest.raises(BadRequestDataError):
        Expander(terms).entity({**entity, "speed": [{"value": 1}, {"value": 2}]})


def test_geojson_feature(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    feature = Compactor(terms, Representation(format="keyValues")).feature(expanded, "location")
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": [8.5, 41.2]}
    assert feature["properties"]["type"] == "Vehicle"
    assert feature["properties"]["speed"] == 80


@pytest.mark.parametrize(
    "entity",
    [
        {"type": "Vehicle"},
        {"id": "not a uri", "type": "Vehicle"},
        {"id": "urn:ngsi-ld:V:1"},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "speed": None},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "speed": {"type": "Property"}},
        {
            "id": "urn:ngsi-ld:V:1",
            "type": "Vehicle",
            "owner": {"type": "Relationship", "object": "x y"},
        },
        {
            "id": "urn:ngsi-ld:V:1",
            "type": "Vehicle",
            "loc": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": "x"}},
        },
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "bad=name": 1},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "speed": {"type": "Bogus", "value": 1}},
        {
            "id": "urn:ngsi-ld:V:1",
            "type": "Vehicle",
            "speed": {"value": 1, "observedAt": "yesterday"},
        },
        ["not", "an", "object"],
        {"id": "urn:ngsi-ld:V:\u200b1", "type": "Vehicle"},
        {"id": "urn:ngsi-ld:V:\u3164", "type": "Vehicle"},
        {"id": "urn:ngsi-ld:V:1", "type": "1Vehicle"},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "observedAt": {"value": 1}},
        {
            "id": "urn:ngsi-ld:V:1",
            "type": "Vehicle",
            "a": {"type": "Property", "object": "urn:x:1"},
        },
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "a": {"value": 1, "previousValue": 0}},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "a": {"object": "urn:x:1", "unitCode": "M"}},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "a": {"type": "JsonProperty", "json": 3}},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "a": {"value": {"b": None}}},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "a": {"value": "urn:ngsi-ld:null"}},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "location": {"value": 1}},
        {"id": "urn:ngsi-ld:V:1", "type": "Vehicle", "a": {"value": 1, "@context": {}}},
        {
            "id": "urn:ngsi-ld:V:1",
            "type": "Vehicle",
            "a": {"value": 1, "observedAt": "2024-01-01T00:00:00+01:00"},
        },
    ],
)
def test_invalid_entities_are_bad_request_data(terms: TermMap, entity: Any) -> None:
    with pytest.raises(BadRequestDataError):
        Expander(terms).entity(entity)


def test_options_parsing() -> None:
    assert parse_options("keyValues,sysAttrs", None) == ("keyValues", {"sysAttrs"})
    assert parse_options(None, "concise") == ("concise", set())
    assert parse_options("simplified", None)[0] == "keyValues"
    with pytest.raises(BadRequestDataError):
        parse_options("keyValues,concise", None)
    with pytest.raises(InvalidRequestError):
        parse_options("bogus", None)


def test_sys_attrs_are_shown_only_when_asked(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    stamped = {
        **expanded,
        "createdAt": "2024-01-01T00:00:00Z",
        "modifiedAt": "2024-01-02T00:00:00Z",
        DEFAULT + "speed": {**expanded[DEFAULT + "speed"], "modifiedAt": "2024-01-02T00:00:00Z"},
    }
    plain = Compactor(terms, Representation()).entity(stamped)
    assert "createdAt" not in plain and "modifiedAt" not in plain["speed"]
    with_sys = Compactor(terms, Representation(sys_attrs=True)).entity(stamped)
    assert with_sys["createdAt"] == "2024-01-01T00:00:00Z"
    assert with_sys["speed"]["modifiedAt"] == "2024-01-02T00:00:00Z"


def test_client_system_members_are_ignored_on_input(terms: TermMap) -> None:
    sent = {**VEHICLE, "createdAt": "1999-01-01T00:00:00Z"}
    sent["speed"] = {**VEHICLE["speed"], "modifiedAt": "1999-01-01T00:00:00Z"}
    expanded = Expander(terms).entity(sent)
    assert "createdAt" not in expanded
    assert "modifiedAt" not in expanded[DEFAULT + "speed"]


def test_lang_with_weights_picks_the_preferred_language(terms: TermMap) -> None:
    expanded = Expander(terms).entity(VEHICLE)
    chosen = Compactor(terms, Representation(lang="de;q=0.9,fr;q=1.0")).entity(expanded)
    assert chosen["name"]["value"] == "Voiture"
    # 4.15 / RFC 4647: "*" matches any language — one of them is served, tagged.
    anyone = Compactor(terms, Representation(lang="*")).entity(expanded)
    assert anyone["name"]["type"] == "Property"
    assert anyone["name"]["lang"] in VEHICLE["name"]["languageMap"]


def test_lang_ranges_truncate_and_extend() -> None:
    streets = {"fr": "Grand Place", "nl": "Grote Markt", "en-US": "Main Square"}
    assert choose_language(streets, "nl-BE") == ("nl", "Grote Markt")
    assert choose_language(streets, "EN") == ("en-US", "Main Square")
    assert choose_language(streets, "pt") == ("fr", "Grand Place")  # any, when none match


def test_partial_fragment_needs_no_main_member(terms: TermMap) -> None:
    fragment = Expander(terms, partial=True).attribute(
        {"type": "Property", "observedAt": "2024-01-01T00:00:00Z"}, "speed"
    )
    assert fragment == {"type": "Property", "observedAt": "2024-01-01T00:00:00Z"}
    with pytest.raises(BadRequestDataError):
        Expander(terms).attribute({"type": "Property"}, "speed")


def test_string_geometry_and_explicit_default_dataset_are_accepted(terms: TermMap) -> None:
    entity = {
        "id": "urn:ngsi-ld:Vehicle:A9",
        "type": "Vehicle",
        "location": {"type": "GeoProperty", "value": '{"type": "Point", "coordinates": [1, 2]}'},
        "speed": {"value": 1, "datasetId": "@none"},
    }
    expanded = Expander(terms).entity(entity)
    assert expanded[NGSI_LD + "location"]["value"] == {"type": "Point", "coordinates": [1, 2]}
    assert "datasetId" not in expanded[DEFAULT + "speed"]


def test_projected_entity_without_id_or_type_renders(terms: TermMap) -> None:
    projected = {DEFAULT + "speed": {"type": "Property", "value": 3}}
    assert Compactor(terms, Representation()).entity(projected) == {
        "speed": {"type": "Property", "value": 3}
    }


def test_object_list_accepts_both_entry_forms_and_shows_objects(terms: TermMap) -> None:
    entity = {
        "id": "urn:ngsi-ld:Road:R",
        "type": "Road",
        "segments": {
            "type": "ListRelationship",
            "objectList": ["urn:ngsi-ld:Seg:1", {"object": "urn:ngsi-ld:Seg:2"}],
        },
    }
    shown = Compactor(terms, Representation()).entity(Expander(terms).entity(entity))
    assert shown["segments"]["objectList"] == [
        {"object": "urn:ngsi-ld:Seg:1"},
        {"object": "urn:ngsi-ld:Seg:2"},
    ]


def test_key_values_keep_typed_members_and_key_instances_by_dataset(terms: TermMap) -> None:
    entity = {
        **VEHICLE,
        "speed": [
            {"type": "Property", "value": 55},
            {"type": "Property", "value": 11, "datasetId": "urn:ngsi-ld:Dataset:gps"},
        ],
        "isParked": {"type": "ListRelationship", "objectList": ["urn:ngsi-ld:Parking:P1"]},
    }
    expanded = Expander(terms).entity(entity)
    simplified = Compactor(terms, Representation(format="keyValues")).entity(expanded)
    # 4.5.4: the simplified form still tells these attribute types apart
    assert simplified["name"] == {"languageMap": {"en": "Car", "fr": "Voiture"}}
    assert simplified["category"] == {"vocab": "Sedan"}
    assert simplified["speed"] == {"dataset": {"@none": 55, "urn:ngsi-ld:Dataset:gps": 11}}
    assert simplified["isParked"] == ["urn:ngsi-ld:Parking:P1"]
    normalized = Compactor(terms, Representation()).entity(expanded)
    assert isinstance(normalized["speed"], list) and len(normalized["speed"]) == 2
