from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from cityos_kernel.events import CATALOGUE, SchemaError
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import DEVICES, OBSERVATIONS
from cityos_kernel.logging import log_context


def observation() -> ObservationV1:
    return ObservationV1(
        entity_id="urn:ngsi-ld:AirQualityObserved:a1",
        entity_type="AirQualityObserved",
        attributes=[
            ObservedAttribute(
                name="NO2", value=21.5, unit_code="GQ", observed_at=datetime(2026, 1, 1, tzinfo=UTC)
            )
        ],
    )


def test_round_trip_keeps_every_field() -> None:
    envelope = OBSERVATIONS.envelope(observation(), source="acquisition", tenant="city-a")
    decoded = OBSERVATIONS.decode(OBSERVATIONS.encode(envelope))
    assert decoded == envelope
    assert decoded.type == "acquisition.observations"
    assert decoded.schema_version == 1
    assert decoded.payload.attributes[0].unit_code == "GQ"


def test_tenant_and_correlation_come_from_the_log_context() -> None:
    with log_context(tenant="city-b", correlation_id="req-42"):
        envelope = OBSERVATIONS.envelope(observation(), source="acquisition")
    assert (envelope.tenant, envelope.correlation_id) == ("city-b", "req-42")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b'{"type": "acquisition.observations"}', "schema_version: Field required"),
        (b"[]", "does not match"),
    ],
)
def test_invalid_bytes_raise_schema_error_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason):
        OBSERVATIONS.decode(raw)


def test_payload_violations_name_the_field() -> None:
    envelope = OBSERVATIONS.envelope(observation(), source="acquisition")
    raw = orjson.loads(OBSERVATIONS.encode(envelope))
    raw["payload"]["attributes"] = []
    with pytest.raises(SchemaError, match="payload.attributes"):
        OBSERVATIONS.decode(orjson.dumps(raw))


def test_an_envelope_of_another_topic_is_rejected() -> None:
    envelope = OBSERVATIONS.envelope(observation(), source="acquisition")
    raw = orjson.loads(OBSERVATIONS.encode(envelope))
    raw["type"] = DEVICES.event_type
    with pytest.raises(SchemaError, match="topic acquisition.observations.v1 carries"):
        OBSERVATIONS.decode(orjson.dumps(raw))


def test_catalogue_matches_the_architecture() -> None:
    assert set(CATALOGUE) == {
        "acquisition.observations.v1",
        "acquisition.devices.v1",
        "acquisition.deadletter.v1",
        "knowledge.entities.changed.v1",
        "knowledge.alerts.v1",
        "knowledge.commands.v1",
        "support.audit.v1",
        "support.config.changed.v1",
        "platform.deadletter.v1",
    }
    for name, topic in CATALOGUE.items():
        assert topic.name == name
        assert topic.schema_version == int(name.rsplit(".v", 1)[1])
