"""Choosing an observation's time: the device's when it is given and valid, else arrival.

Every time that leaves this module is timezone-aware UTC. A device time without an offset
is read as UTC (what the IoT Agents do); a device time too far in the future (a clock that
was never set, or a year typed wrong) is not trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

#: A device clock ahead of ours by more than this is considered wrong.
MAX_CLOCK_AHEAD = timedelta(minutes=10)
#: Times before this are clocks that were never set (many devices boot at 1970 or 2000).
EARLIEST_VALID = datetime(2000, 1, 2, tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 string (or epoch seconds/milliseconds) as UTC; ``None`` if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) < 8 or not text[:4].isdigit():
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def observation_time(device_time: Any, arrival: datetime) -> datetime:
    """The device's time when it is present and plausible, otherwise the arrival time."""
    if device_time is None and arrival.tzinfo is UTC:
        return arrival  # the common case, once per message
    arrival = arrival.astimezone(UTC) if arrival.tzinfo else arrival.replace(tzinfo=UTC)
    parsed = parse_timestamp(device_time) if device_time is not None else None
    if parsed is None or parsed < EARLIEST_VALID or parsed > arrival + MAX_CLOCK_AHEAD:
        return arrival
    return parsed
