"""The fast observation encoding is exactly what the topic schema accepts."""

from __future__ import annotations

from datetime import UTC, datetime

from cityos_acquisition.codecs.json_measures import MeasureGroup
from cityos_acquisition.ingest.encoding import encode_observation
from cityos_acquisition.mapping.config import AttributeMapping, DeviceProfile
from cityos_acquisition.mapping.mapper import map_measures
from cityos_kernel.events.topics import OBSERVATIONS


def test_fast_encoding_decodes_to_the_validated_payload() -> None:
    profile = DeviceProfile(
        device_id="aq1",
        tenant="sevilla",
        entity_type="AirQualityObserved",
        attributes=(AttributeMapping("gps", "location", "geo:point"),),
    )
    received = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    (observation,) = map_measures(
        profile,
        [MeasureGroup({"t": "21.5", "gps": "37.39, -5.99", "state": {"ok": True}})],
        received_at=received,
    )
    envelope = OBSERVATIONS.decode(
        encode_observation(observation, tenant="sevilla", source="acquisition:mqtt")
    )
    assert envelope.payload == observation.to_payload()
    assert envelope.tenant == "sevilla" and envelope.source == "acquisition:mqtt"
    assert envelope.payload.attributes[0].observed_at == received
    assert envelope.payload.attributes[1].kind == "GeoProperty"
