"""A complete decoder (and encoder, for the simulator) of Cayenne Low Power Payload.

A payload is a sequence of ``channel (1 byte) | type (1 byte) | data`` records, big-endian.
The types are the IPSO-derived ones of the Cayenne specification plus the extended set
that the common device libraries (and ChirpStack's and TTS's built-in codecs) emit.
Measures are named ``<type>_<channel>`` (``temperature_3``), as the FIWARE LoRaWAN IoT
Agent names them, so provisioning written for it keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cityos_acquisition.codecs.errors import DecodeError


@dataclass(frozen=True, slots=True)
class LppType:
    """One data type: its code, name, how many bytes per value and how to scale them."""

    code: int
    name: str
    size: int
    signed: bool
    divisor: float
    #: How many scalar fields the type carries (3 for accelerometer/gyrometer/colour).
    axes: tuple[str, ...] = ()


# Codes, sizes, signedness and resolutions from the Cayenne LPP specification and the
# extended type table (ElectronicCats / TTN codec); GPS is special-cased below.
LPP_TYPES: dict[int, LppType] = {
    t.code: t
    for t in (
        LppType(0, "digital_input", 1, False, 1),
        LppType(1, "digital_output", 1, False, 1),
        LppType(2, "analog_input", 2, True, 100),
        LppType(3, "analog_output", 2, True, 100),
        LppType(100, "generic_sensor", 4, False, 1),
        LppType(101, "illuminance", 2, False, 1),
        LppType(102, "presence", 1, False, 1),
        LppType(103, "temperature", 2, True, 10),
        LppType(104, "relative_humidity", 1, False, 2),
        LppType(113, "accelerometer", 2, True, 1000, ("x", "y", "z")),
        LppType(115, "barometric_pressure", 2, False, 10),
        LppType(116, "voltage", 2, False, 100),
        LppType(117, "current", 2, False, 1000),
        LppType(118, "frequency", 4, False, 1),
        LppType(120, "percentage", 1, False, 1),
        LppType(121, "altitude", 2, True, 1),
        LppType(125, "concentration", 2, False, 1),
        LppType(128, "power", 2, False, 1),
        LppType(130, "distance", 4, False, 1000),
        LppType(131, "energy", 4, False, 1000),
        LppType(132, "direction", 2, False, 1),
        LppType(133, "unix_time", 4, False, 1),
        LppType(134, "gyrometer", 2, True, 100, ("x", "y", "z")),
        LppType(135, "colour", 1, False, 1, ("r", "g", "b")),
        LppType(136, "gps", 9, True, 1),
        LppType(142, "switch", 1, False, 1),
    )
}
LPP_TYPES_BY_NAME: dict[str, LppType] = {t.name: t for t in LPP_TYPES.values()}
GPS = 136


@dataclass(frozen=True, slots=True)
class LppValue:
    """One decoded record."""

    channel: int
    type: LppType
    value: Any

    @property
    def name(self) -> str:
        return f"{self.type.name}_{self.channel}"


def _number(raw: bytes, signed: bool, divisor: float) -> int | float:
    integer = int.from_bytes(raw, "big", signed=signed)
    if divisor == 1:
        return integer
    return round(integer / divisor, 6)


def _decode_value(lpp_type: LppType, data: bytes) -> Any:
    if lpp_type.code == GPS:
        return {
            "latitude": _number(data[0:3], True, 10_000),
            "longitude": _number(data[3:6], True, 10_000),
            "altitude": _number(data[6:9], True, 100),
        }
    if lpp_type.axes:
        size = lpp_type.size
        return {
            axis: _number(data[i * size : (i + 1) * size], lpp_type.signed, lpp_type.divisor)
            for i, axis in enumerate(lpp_type.axes)
        }
    value = _number(data, lpp_type.signed, lpp_type.divisor)
    if lpp_type.name in {"presence", "switch", "digital_input", "digital_output"}:
        return int(value)
    return value


def _data_size(lpp_type: LppType) -> int:
    return lpp_type.size * len(lpp_type.axes) if lpp_type.axes else lpp_type.size


def decode_cayenne_lpp(payload: bytes) -> list[LppValue]:
    """Decode every record; a truncated record or an unknown type raises :class:`DecodeError`."""
    if not payload:
        raise DecodeError("empty CayenneLPP payload")
    values: list[LppValue] = []
    position = 0
    while position < len(payload):
        if position + 2 > len(payload):
            raise DecodeError(
                f"truncated CayenneLPP payload: a record header at byte {position} is cut short"
            )
        channel, code = payload[position], payload[position + 1]
        lpp_type = LPP_TYPES.get(code)
        if lpp_type is None:
            raise DecodeError(
                f"unknown CayenneLPP type {code} (0x{code:02x}) on channel {channel} "
                f"at byte {position}"
            )
        size = _data_size(lpp_type)
        start = position + 2
        if start + size > len(payload):
            raise DecodeError(
                f"truncated CayenneLPP payload: {lpp_type.name} on channel {channel} needs "
                f"{size} bytes at byte {start}, {len(payload) - start} left"
            )
        values.append(LppValue(channel, lpp_type, _decode_value(lpp_type, payload[start:][:size])))
        position = start + size
    return values


def cayenne_measures(payload: bytes) -> dict[str, Any]:
    """Decoded records as ``{"temperature_3": 27.2, ...}`` (a repeated name keeps the last)."""
    return {value.name: value.value for value in decode_cayenne_lpp(payload)}


def _encode_number(value: float, lpp_type: LppType, size: int) -> bytes:
    integer = round(value * lpp_type.divisor)
    try:
        return integer.to_bytes(size, "big", signed=lpp_type.signed)
    except OverflowError as exc:
        raise ValueError(f"{value} does not fit a CayenneLPP {lpp_type.name}") from exc


def encode_cayenne_lpp(records: Sequence[tuple[int, str, Any]]) -> bytes:
    """Encode ``(channel, type name, value)`` records (for the simulator and tests)."""
    out = bytearray()
    for channel, type_name, value in records:
        lpp_type = LPP_TYPES_BY_NAME[type_name]
        out += bytes((channel, lpp_type.code))
        if lpp_type.code == GPS:
            out += round(value["latitude"] * 10_000).to_bytes(3, "big", signed=True)
            out += round(value["longitude"] * 10_000).to_bytes(3, "big", signed=True)
            out += round(value["altitude"] * 100).to_bytes(3, "big", signed=True)
        elif lpp_type.axes:
            for axis in lpp_type.axes:
                out += _encode_number(value[axis], lpp_type, lpp_type.size)
        else:
            out += _encode_number(value, lpp_type, lpp_type.size)
    return bytes(out)
