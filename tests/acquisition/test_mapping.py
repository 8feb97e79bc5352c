"""Device configuration → NGSI-LD observations (IoT Agent attribute semantics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cityos_acquisition.codecs.json_measures import MeasureGroup
from cityos_acquisition.mapping.config import AttributeMapping, DeviceProfile, StaticAttribute
from cityos_acquisition.mapping.mapper import MappingError, device_entity_id, map_measures

RECEIVED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def profile(**changes: object) -> DeviceProfile:
    values: dict[str, object] = {
        "device_id": "motion001",
        "tenant": "openiot",
        "entity_type": "Motion",
        "attributes": (AttributeMapping("c", "count", "Integer"),),
    }
    values.update(changes)
    return DeviceProfile(**values)  # type: ignore[arg-type]


def attributes(observation: object) -> dict[str, object]:
    return {a.name: a.value for a in observation.attributes}  # type: ignore[attr-defined]


def test_default_entity_id_and_object_id_mapping() -> None:
    (observation,) = map_measures(
        profile(), [MeasureGroup({"c": "3", "extra": "x"})], received_at=RECEIVED
    )
    assert observation.entity_id == "urn:ngsi-ld:Motion:motion001"
    assert observation.entity_type == "Motion"
    assert attributes(observation) == {"count": 3, "extra": "x"}
    assert all(a.observed_at == RECEIVED for a in observation.attributes)


def test_entity_name_and_entity_name_expression() -> None:
    assert device_entity_id(profile(entity_name="Motion:001")) == "urn:ngsi-ld:Motion:Motion:001"
    assert device_entity_id(profile(entity_name="urn:ngsi-ld:Motion:x")) == "urn:ngsi-ld:Motion:x"
    expression = profile(entity_name_exp='"room-" + id + "-" + floor')
    assert device_entity_id(expression, {"floor": 2}) == "urn:ngsi-ld:Motion:room-motion001-2"
    with pytest.raises(MappingError, match="entityNameExp"):
        device_entity_id(expression, {})


def test_expression_unit_code_and_device_time() -> None:
    device = profile(
        entity_type="WeatherObserved",
        attributes=(
            AttributeMapping(
                "tf", "temperature", "Number", unit_code="CEL", expression="(tf - 32) / 1.8"
            ),
        ),
    )
    (observation,) = map_measures(
        device, [MeasureGroup({"tf": "212"}, "2026-11-22T09:59:00Z")], received_at=RECEIVED
    )
    (temperature,) = observation.attributes
    assert (temperature.name, temperature.value, temperature.unit_code) == (
        "temperature",
        100.0,
        "CEL",
    )
    assert temperature.observed_at == datetime(2026, 11, 22, 9, 59, tzinfo=UTC)


def test_explicit_attrs_true_keeps_only_mapped_and_list_keeps_the_listed() -> None:
    group = [MeasureGroup({"c": 1, "extra": 2, "other": 3})]
    (only_mapped,) = map_measures(profile(explicit_attrs=True), group, received_at=RECEIVED)
    assert attributes(only_mapped) == {"count": 1}
    (listed,) = map_measures(profile(explicit_attrs=("other",)), group, received_at=RECEIVED)
    assert attributes(listed) == {"other": 3}


def test_static_attributes_ride_along_and_measure_to_another_entity() -> None:
    device = profile(
        attributes=(
            AttributeMapping("c", "count", "Integer"),
            AttributeMapping("l", "luminosity", "Number", entity_name="Lamp:1", entity_type="Lamp"),
        ),
        static_attributes=(StaticAttribute("refStore", "Relationship", "urn:ngsi-ld:Store:001"),),
    )
    own, lamp = map_measures(device, [MeasureGroup({"c": 1, "l": "40"})], received_at=RECEIVED)
    assert attributes(own) == {"count": 1, "refStore": "urn:ngsi-ld:Store:001"}
    assert next(a for a in own.attributes if a.name == "refStore").kind == "Relationship"
    assert (lamp.entity_id, lamp.entity_type, attributes(lamp)) == (
        "urn:ngsi-ld:Lamp:Lamp:1",
        "Lamp",
        {"luminosity": 40},
    )


def test_smart_data_models_defaults_name_and_unit_unmapped_measures() -> None:
    device = profile(entity_type="AirQualityObserved", attributes=())
    (observation,) = map_measures(
        device, [MeasureGroup({"t": "21.5", "pm2_5": 12, "no2": 40})], received_at=RECEIVED
    )
    found = {a.name: (a.value, a.unit_code) for a in observation.attributes}
    assert found == {"temperature": (21.5, "CEL"), "pm25": (12, "GQ"), "no2": (40, "GQ")}
    cayenne = profile(entity_type="WeatherObserved", attributes=())
    (weather,) = map_measures(
        cayenne,
        [MeasureGroup({"temperature_1": 3.5, "barometric_pressure_2": 1013.2})],
        received_at=RECEIVED,
    )
    assert {a.name for a in weather.attributes} == {"temperature", "atmosphericPressure"}


def test_geo_point_becomes_a_geoproperty() -> None:
    device = profile(attributes=(AttributeMapping("gps", "location", "geo:point"),))
    (observation,) = map_measures(
        device, [MeasureGroup({"gps": "40.41, -3.70"})], received_at=RECEIVED
    )
    (location,) = observation.attributes
    assert location.kind == "GeoProperty"
    assert location.value == {"type": "Point", "coordinates": [-3.70, 40.41]}


@pytest.mark.parametrize(
    ("attribute", "value", "reason"),
    [
        (AttributeMapping("c", "count", "Integer"), "many", "expected a number"),
        (AttributeMapping("c", "count", "Integer"), "1.5", "expected an integer"),
        (AttributeMapping("c", "count", "Number", expression="c / 0"), "1", "division by zero"),
        (AttributeMapping("c", "on", "Boolean"), "maybe", "expected a boolean"),
        (AttributeMapping("c", "where", "geo:point"), "north", "not a point"),
    ],
)
def test_values_that_fail_their_type_or_expression_are_refused(
    attribute: AttributeMapping, value: str, reason: str
) -> None:
    with pytest.raises(MappingError, match=reason):
        map_measures(
            profile(attributes=(attribute,)), [MeasureGroup({"c": value})], received_at=RECEIVED
        )


def test_multi_measure_gives_one_observation_per_group() -> None:
    observations = map_measures(
        profile(), [MeasureGroup({"c": 1}), MeasureGroup({"c": 2})], received_at=RECEIVED
    )
    assert [attributes(o)["count"] for o in observations] == [1, 2]
