"""JSON measures, UltraLight 2.0 and device timestamps (examples from the IoT Agent docs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cityos_acquisition.codecs import DecodeError
from cityos_acquisition.codecs.json_measures import decode_json_measures, decode_single_attribute
from cityos_acquisition.codecs.timestamps import observation_time
from cityos_acquisition.codecs.ultralight import (
    decode_ultralight,
    format_ultralight_command,
    parse_ultralight_command,
)

ARRIVAL = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_json_single_object_keeps_values_and_time_instant() -> None:
    (group,) = decode_json_measures(
        b'{"h": "45%", "t": 23, "l": "1570", "TimeInstant": "2026-11-22T09:59:00Z"}'
    )
    assert group.measures == {"h": "45%", "t": 23, "l": "1570"}
    assert group.device_time == "2026-11-22T09:59:00Z"


def test_json_array_is_one_group_per_object() -> None:
    groups = decode_json_measures(b'[{"h": 70, "t": 15}, {"h": 72, "t": 16}]')
    assert [group.measures["t"] for group in groups] == [15, 16]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"t": 23', "malformed JSON"),
        (b"[]", "empty JSON measure array"),
        (b'"just text"', "must be an object"),
        (b'[{"t": 1}, 5]', "index 1"),
        (b'{"TimeInstant": "2026-11-22T09:59:00Z"}', "holds no measure"),
    ],
)
def test_json_rejects_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_json_measures(payload)


def test_single_attribute_topic_payload_is_json_or_text() -> None:
    assert decode_single_attribute(b"23.5", "t").measures == {"t": 23.5}
    assert decode_single_attribute(b"open", "door").measures == {"door": "open"}
    with pytest.raises(DecodeError):
        decode_single_attribute(b"", "t")
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_single_attribute(b"\xff\xfe", "t")


def test_ultralight_pairs_groups_and_leading_timestamp() -> None:
    assert decode_ultralight(b"t|15|k|abc")[0].measures == {"t": "15", "k": "abc"}
    first, second = decode_ultralight("gps|1.2,3.4#t|10")
    assert first.measures == {"gps": "1.2,3.4"} and second.measures == {"t": "10"}
    (stamped,) = decode_ultralight("2016-06-13T00:35:30Z|lle|100")
    assert stamped.device_time == "2016-06-13T00:35:30Z"
    assert stamped.measures == {"lle": "100"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "empty"),
        ("t|15|k", "odd number of fields"),
        ("|15", "empty measure name"),
        ("2016-06-13T00:35:30Z", "only a timestamp"),
        ("#", "no measure group"),
    ],
)
def test_ultralight_rejects_with_a_reason(payload: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_ultralight(payload)


def test_ultralight_commands_and_results() -> None:
    command = parse_ultralight_command("weatherStation167@ping|Ping ok")
    assert (command.device_id, command.command, command.result) == (
        "weatherStation167",
        "ping",
        "Ping ok",
    )
    assert parse_ultralight_command("lamp1@on").fields == ()
    assert (
        format_ultralight_command("weatherStation167", "ping", {"param1": 1, "param2": 2})
        == "weatherStation167@ping|param1=1|param2=2"
    )
    assert format_ultralight_command("lamp1", "on", None) == "lamp1@on"
    assert format_ultralight_command("lamp1", "dim", [50, True]) == "lamp1@dim|50|true"
    with pytest.raises(ValueError, match="separator"):
        format_ultralight_command("lamp1", "say", "a|b")
    with pytest.raises(DecodeError, match="device@command"):
        parse_ultralight_command("no command here")


def test_observation_time_prefers_a_valid_device_time_always_in_utc() -> None:
    assert observation_time("2026-11-22T10:30:00+02:00", ARRIVAL) == datetime(
        2026, 11, 22, 8, 30, tzinfo=UTC
    )
    assert observation_time("2026-11-22T09:00:00", ARRIVAL).tzinfo == UTC
    # nanoseconds, as ChirpStack writes them
    assert observation_time("2026-11-22T09:34:15.775023242+00:00", ARRIVAL).microsecond == 775023
    assert observation_time(None, ARRIVAL) == ARRIVAL
    assert observation_time("not a time", ARRIVAL) == ARRIVAL
    assert observation_time("1970-01-01T00:00:00Z", ARRIVAL) == ARRIVAL  # clock never set
    assert observation_time((ARRIVAL + timedelta(days=1)).isoformat(), ARRIVAL) == ARRIVAL
    assert observation_time(ARRIVAL.timestamp() * 1000 - 5000, ARRIVAL) == ARRIVAL - timedelta(
        seconds=5
    )
