"""IoT Agent JSON measures: one object of ``object_id: value``, or an array of them.

``{"t": 21.5, "h": 40}`` is one measure group; ``[{...}, {...}]`` is several groups (the
IoT Agent's multi-measure), each becoming its own observation. ``TimeInstant`` inside a
group is the device's time of that group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from cityos_acquisition.codecs.errors import DecodeError

TIME_INSTANT = "TimeInstant"


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and this is built per message.
@dataclass(slots=True)
class MeasureGroup:
    """Measures taken together: ``object_id`` → value, with the device's time if it sent one."""

    measures: dict[str, Any]
    device_time: Any = None


def decode_text(raw: bytes | str) -> str:
    """UTF-8 text of a payload or :class:`DecodeError`."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8 text: {exc}") from exc


def load_json(raw: bytes | str) -> Any:
    """Parse JSON or raise :class:`DecodeError` with the parser's reason."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"malformed JSON: {exc}") from exc


def _group(item: Any, position: str) -> MeasureGroup:
    if not isinstance(item, dict):
        raise DecodeError(f"JSON measures must be an object{position}, got {type(item).__name__}")
    measures = {str(key): value for key, value in item.items() if key != TIME_INSTANT}
    if not measures:
        raise DecodeError(f"JSON measure object{position} holds no measure")
    return MeasureGroup(measures, item.get(TIME_INSTANT))


def decode_json_measures(raw: bytes | str) -> list[MeasureGroup]:
    """Decode a JSON measure payload into one group per object."""
    document = load_json(raw)
    if isinstance(document, list):
        if not document:
            raise DecodeError("empty JSON measure array")
        return [_group(item, f" at index {index}") for index, item in enumerate(document)]
    return [_group(document, "")]


def decode_single_attribute(raw: bytes | str, object_id: str) -> MeasureGroup:
    """The payload of ``/json/<apikey>/<device>/attrs/<attr>``: the raw value of one measure.

    JSON values are taken as JSON; anything else is the text as sent.
    """
    text = decode_text(raw)
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text.strip()
    if value == "" or value is None:
        raise DecodeError(f"empty value for attribute {object_id!r}")
    return MeasureGroup({object_id: value})
