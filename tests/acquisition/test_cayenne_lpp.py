"""CayenneLPP on byte vectors: the specification's examples, every type, broken inputs."""

from __future__ import annotations

import pytest

from cityos_acquisition.codecs import DecodeError
from cityos_acquisition.codecs.cayenne_lpp import (
    LPP_TYPES,
    cayenne_measures,
    decode_cayenne_lpp,
    encode_cayenne_lpp,
)


def test_specification_examples() -> None:
    # Two temperature sensors (Cayenne LPP documentation, example 1).
    assert cayenne_measures(bytes.fromhex("03670110056700FF")) == {
        "temperature_3": 27.2,
        "temperature_5": 25.5,
    }
    # A negative temperature.
    assert cayenne_measures(bytes.fromhex("0167FFD7")) == {"temperature_1": -4.1}
    # Accelerometer (example 2).
    assert cayenne_measures(bytes.fromhex("067104D2FB2E0000")) == {
        "accelerometer_6": {"x": 1.234, "y": -1.234, "z": 0.0}
    }
    # GPS (example 3): lat 42.3519, lon -87.9094, alt 10 m.
    assert cayenne_measures(bytes.fromhex("018806765FF2960A0003E8")) == {
        "gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0}
    }


@pytest.mark.parametrize(
    ("hex_payload", "name", "value"),
    [
        ("0000 01", "digital_input_0", 1),
        ("0101 00", "digital_output_1", 0),
        ("0202 FF38", "analog_input_2", -2.0),
        ("0303 04D2", "analog_output_3", 12.34),
        ("0464 0001E240", "generic_sensor_4", 123456),
        ("0565 0400", "illuminance_5", 1024),
        ("0666 01", "presence_6", 1),
        ("0768 61", "relative_humidity_7", 48.5),
        ("0873 275C", "barometric_pressure_8", 1007.6),
        ("0974 0190", "voltage_9", 4.0),
        ("0A75 03E8", "current_10", 1.0),
        ("0B76 00000032", "frequency_11", 50),
        ("0C78 64", "percentage_12", 100),
        ("0D79 FF9C", "altitude_13", -100),
        ("0E7D 0190", "concentration_14", 400),
        ("0F80 0064", "power_15", 100),
        ("1082 000003E8", "distance_16", 1.0),
        ("1183 00002710", "energy_17", 10.0),
        ("1284 0168", "direction_18", 360),
        ("1385 6553F100", "unix_time_19", 1700000000),
        ("1486 0064FF9C0000", "gyrometer_20", {"x": 1.0, "y": -1.0, "z": 0.0}),
        ("1587 FF8000", "colour_21", {"r": 255, "g": 128, "b": 0}),
        ("168E 01", "switch_22", 1),
    ],
)
def test_every_type_decodes(hex_payload: str, name: str, value: object) -> None:
    assert cayenne_measures(bytes.fromhex(hex_payload.replace(" ", ""))) == {name: value}


def test_the_type_table_is_complete_and_round_trips() -> None:
    assert len(LPP_TYPES) == 26
    records = [
        (1, "temperature", -12.3),
        (2, "relative_humidity", 55.5),
        (3, "barometric_pressure", 1013.2),
        (4, "gps", {"latitude": 40.4168, "longitude": -3.7038, "altitude": 657.5}),
        (5, "accelerometer", {"x": 0.5, "y": -0.25, "z": 1.0}),
        (6, "concentration", 812),
    ]
    decoded = decode_cayenne_lpp(encode_cayenne_lpp(records))
    assert [(v.channel, v.type.name, v.value) for v in decoded] == records


@pytest.mark.parametrize(
    ("hex_payload", "reason"),
    [
        ("", "empty"),
        ("03", "header at byte 0 is cut short"),
        ("0367 01", "temperature on channel 3 needs 2 bytes at byte 2, 1 left"),
        ("03670110 0567", "temperature on channel 5 needs 2 bytes"),
        ("0188 06765FF2960A00", "gps on channel 1 needs 9 bytes"),
        ("0163 00", "unknown CayenneLPP type 99"),
        ("01F0 0000", "unknown CayenneLPP type 240"),
    ],
)
def test_truncated_and_invalid_payloads_are_rejected(hex_payload: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_cayenne_lpp(bytes.fromhex(hex_payload.replace(" ", "")))
