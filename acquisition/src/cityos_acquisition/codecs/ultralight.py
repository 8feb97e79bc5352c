"""UltraLight 2.0, the FIWARE IoT Agent's compact text protocol.

Measures: ``t|21.5|h|40`` (``key|value`` pairs), groups separated by ``#``
(``t|21|h|40#t|22|h|41``), each optionally led by the device's timestamp
(``2016-06-13T00:35:30Z|t|21``). Commands to a device: ``dev@cmd|p1|p2`` (or
``dev@cmd|name=value|...``), and the device answers ``dev@cmd|result``.

Values are kept as text, as the IoT Agent does; the attribute mapping decides their type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cityos_acquisition.codecs.errors import DecodeError
from cityos_acquisition.codecs.json_measures import MeasureGroup, decode_text
from cityos_acquisition.codecs.timestamps import parse_timestamp

#: Characters that would break the framing of a UL payload if they appeared in a value.
_RESERVED = frozenset("|#@\n\r")


def _decode_group(text: str, position: int) -> MeasureGroup:
    fields = [field.strip() for field in text.split("|")]
    device_time: str | None = None
    if len(fields) % 2 == 1:
        if parse_timestamp(fields[0]) is None:
            raise DecodeError(
                f"UltraLight group {position}: odd number of fields ({len(fields)}) and the "
                f"first, {fields[0]!r}, is not a timestamp"
            )
        device_time, fields = fields[0], fields[1:]
    if not fields:
        raise DecodeError(f"UltraLight group {position} holds only a timestamp")
    measures: dict[str, Any] = {}
    for index in range(0, len(fields), 2):
        key, value = fields[index], fields[index + 1]
        if not key:
            raise DecodeError(f"UltraLight group {position}: empty measure name at field {index}")
        measures[key] = value
    return MeasureGroup(measures, device_time)


def decode_ultralight(raw: bytes | str) -> list[MeasureGroup]:
    """Decode an UltraLight 2.0 measure payload into its groups."""
    text = decode_text(raw).strip()
    if not text:
        raise DecodeError("empty UltraLight payload")
    groups = [group for group in text.split("#") if group.strip()]
    if not groups:
        raise DecodeError("UltraLight payload holds no measure group")
    return [_decode_group(group.strip(), position) for position, group in enumerate(groups)]


@dataclass(frozen=True, slots=True)
class UltraLightCommand:
    """A command line ``device@command|fields...`` (a request or the device's answer)."""

    device_id: str
    command: str
    fields: tuple[str, ...]

    @property
    def result(self) -> str:
        """The device's answer: everything after the command name."""
        return "|".join(self.fields)


def parse_ultralight_command(raw: bytes | str) -> UltraLightCommand:
    """Parse ``device@command|...`` (also the device's command result on ``cmdexe``)."""
    text = decode_text(raw).strip()
    head, separator, rest = text.partition("|")
    device_id, at, command = head.partition("@")
    if not at or not device_id.strip() or not command.strip():
        raise DecodeError(f"UltraLight command must look like device@command|...: {text[:80]!r}")
    fields = tuple(field.strip() for field in rest.split("|")) if separator else ()
    return UltraLightCommand(device_id.strip(), command.strip(), fields)


def _format_value(value: Any) -> str:
    text = "true" if value is True else "false" if value is False else str(value)
    if any(char in _RESERVED for char in text):
        raise ValueError(f"value {text!r} contains an UltraLight separator")
    return text


def format_ultralight_command(device_id: str, command: str, params: Any) -> str:
    """Write a command for a device: ``dev@cmd``, ``dev@cmd|v`` or ``dev@cmd|k=v|k=v``."""
    line = f"{device_id}@{command}"
    if params is None or params == "":
        return line
    if isinstance(params, Mapping):
        fields = [f"{_format_value(key)}={_format_value(value)}" for key, value in params.items()]
    elif isinstance(params, list | tuple):
        fields = [_format_value(value) for value in params]
    else:
        fields = [_format_value(params)]
    return "|".join([line, *fields])


def format_ultralight_measures(measures: Mapping[str, Any], device_time: str | None = None) -> str:
    """Write one measure group (used by the simulator and tests)."""
    fields = [f"{_format_value(key)}|{_format_value(value)}" for key, value in measures.items()]
    return "|".join(([device_time] if device_time else []) + fields)
