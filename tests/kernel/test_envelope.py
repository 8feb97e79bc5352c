from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from cityos_kernel.events import CATALOGUE, SchemaError
from cityos_kernel.events.envelope import fast_uuid4
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


def test_an_unchecked_envelope_decodes_to_what_the_models_make() -> None:
    payload = observation()
    encoded = OBSERVATIONS.encode_unchecked(
        payload.model_dump(mode="json"), source="acquisition", tenant="city-a"
    )
    decoded = OBSERVATIONS.decode(encoded)
    made = OBSERVATIONS.envelope(payload, source="acquisition", tenant="city-a")
    assert decoded.payload == payload
    assert decoded.model_dump(exclude={"id", "time", "correlation_id"}) == made.model_dump(
        exclude={"id", "time", "correlation_id"}
    )
    assert decoded.correlation_id == str(decoded.id)  # none given: the message's own id
    assert abs((decoded.time - datetime.now(UTC)).total_seconds()) < 60
    given = OBSERVATIONS.encode_unchecked(
        {}, source="acquisition", tenant="city-a", correlation_id="req-7"
    )
    assert orjson.loads(given)["correlation_id"] == "req-7"


def test_fast_ids_are_random_version_4_uuids() -> None:
    ids = {fast_uuid4() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)


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
