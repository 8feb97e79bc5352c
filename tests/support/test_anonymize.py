"""Anonymization helpers on NGSI-LD entities."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cityos_support.security.anonymize import AnonymizationPolicy, anonymize, keyed_hash

KEY = b"k" * 32

ENTITY = {
    "id": "urn:ngsi-ld:Vehicle:42",
    "type": "Vehicle",
    "licensePlate": {"type": "Property", "value": "1234-ABC"},
    "driverName": {"type": "Property", "value": "Ana"},
    "location": {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [-3.703790, 40.416775]},
        "observedAt": "2026-11-22T09:47:13Z",
    },
    "speed": {"type": "Property", "value": 57.4, "observedAt": "2026-11-22T09:47:13Z"},
}


def policy(**attributes: dict[str, object]) -> AnonymizationPolicy:
    return AnonymizationPolicy.model_validate({"attributes": attributes})


def test_drop_hash_and_generalize() -> None:
    result = anonymize(
        ENTITY,
        policy(
            driverName={"action": "drop"},
            licensePlate={"action": "hash"},
            location={"action": "generalize", "decimals": 2, "bucket": "hour"},
            speed={"action": "generalize", "step": 10},
        ),
        key=KEY,
    )
    assert "driverName" not in result
    assert result["licensePlate"]["value"] == keyed_hash("1234-ABC", KEY)
    assert "1234" not in result["licensePlate"]["value"]
    assert result["location"]["value"]["coordinates"] == [-3.70, 40.42]
    assert result["location"]["observedAt"] == "2026-11-22T09:00:00Z"
    assert result["speed"]["value"] == 50.0
    assert ENTITY["driverName"]["value"] == "Ana"  # the input is untouched


def test_keyed_hash_joins_equal_values_but_depends_on_the_key() -> None:
    assert keyed_hash("1234-ABC", KEY) == keyed_hash("1234-ABC", KEY)
    assert keyed_hash("1234-ABC", KEY) != keyed_hash("1234-ABC", b"other key")


def test_key_values_and_multi_instance_attributes() -> None:
    entity = {
        "id": "x",
        "type": "T",
        "seenAt": "2026-11-22T09:47:13+00:00",
        "plate": [
            {"type": "Property", "value": "A", "datasetId": "urn:a"},
            {"type": "Property", "value": "B"},
        ],
    }
    result = anonymize(
        entity,
        policy(seenAt={"action": "generalize", "bucket": "day"}, plate={"action": "hash"}),
        key=KEY,
    )
    assert result["seenAt"] == "2026-11-22T00:00:00+00:00"
    assert [p["value"] for p in result["plate"]] == [keyed_hash("A", KEY), keyed_hash("B", KEY)]
    assert result["plate"][0]["datasetId"] == "urn:a"


def test_generalize_must_say_how() -> None:
    with pytest.raises(ValidationError, match="decimals, bucket or step"):
        policy(location={"action": "generalize"})
