"""Temporal pagination (GS CIM 009 6.3.10): at most N instances per attribute, and a range.

When an attribute has more instances in the requested window than the broker returns at
once (``CITYOS_INTEROP_TEMPORAL_MAX_INSTANCES``), the answer is cut at one instant for every
attribute, so that nothing is left out in between: oldest first, the cut is the earliest
"N-th instance" among the attributes that had too many, and everything after it waits for
the next request; with ``lastN`` (newest first) the cut is the latest such instant and
everything before it waits. The answer is then 206 with
``Content-Range: date-time <start>-<end>/<size>``: start is where the request's window
starts (``timeAt`` for after/between; ``endTimeAt``/``timeAt`` for lastN with
between/before) or else the first instant returned, end is the cut, size is ``lastN`` or
``*``. A client continues with ``timeAt`` set to the end.

Applied to what the facade returned (its SQL already filtered the window and ``lastN``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Order = Literal["oldest", "newest"]

#: Entity members that are not attributes.
_CORE = frozenset({"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"})


@dataclass(frozen=True)
class Window:
    """What the request asked: its time window and ``lastN``."""

    timerel: str | None = None
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    last_n: int | None = None
    timeproperty: str = "observedAt"


@dataclass(frozen=True)
class TemporalPage:
    entities: list[dict[str, Any]]
    #: The Content-Range header when the answer was cut (then the status is 206).
    content_range: str | None = None


def parse_instant(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class _Series:
    """The instances (or ``[value, time]`` pairs) of one attribute and datasetId."""

    items: list[Any]
    time_of: Callable[[Any], datetime | None]
    store: Callable[[list[Any]], None]


def _series(
    entities: list[dict[str, Any]], representation: str, timeproperty: str
) -> list[_Series]:
    found: list[_Series] = []
    for entity in entities:
        for name, value in entity.items():
            if name in _CORE:
                continue
            if representation == "temporalValues":
                for item in value if isinstance(value, list) else [value]:
                    member = next(
                        (
                            k
                            for k, v in item.items()
                            if k not in ("type", "datasetId") and isinstance(v, list)
                        ),
                        None,
                    )
                    if member is not None:
                        found.append(_Series(item[member], _pair_time, _setter(item, member)))
            else:
                found.extend(_instance_series(entity, name, value, timeproperty))
    return found


def _instance_series(
    entity: dict[str, Any], name: str, value: Any, timeproperty: str
) -> Iterable[_Series]:
    """One series per datasetId; storing any of them rebuilds the attribute's list."""
    instances = value if isinstance(value, list) else [value]
    groups: dict[Any, list[Any]] = {}
    for instance in instances:
        groups.setdefault(instance.get("datasetId"), []).append(instance)

    def time_of(instance: Any) -> datetime | None:
        return parse_instant(instance.get(timeproperty))

    def store_group(dataset: Any) -> Callable[[list[Any]], None]:
        def store(items: list[Any]) -> None:
            groups[dataset] = items
            entity[name] = [item for group in groups.values() for item in group]

        return store

    return [_Series(items, time_of, store_group(dataset)) for dataset, items in groups.items()]


def _pair_time(pair: Any) -> datetime | None:
    return parse_instant(pair[1]) if isinstance(pair, list) and len(pair) > 1 else None


def _setter(target: dict[str, Any], member: str) -> Callable[[list[Any]], None]:
    def store(items: list[Any]) -> None:
        target[member] = items

    return store


def paginate(
    entities: list[dict[str, Any]], window: Window, limit: int, representation: str
) -> TemporalPage:
    """Cut ``entities`` (expanded temporal answers, changed in place) at ``limit`` per attribute."""
    series = _series(entities, representation, window.timeproperty)
    newest = window.last_n is not None
    crowded = [s for s in series if len(s.items) > limit]
    if not crowded:
        return TemporalPage(entities)
    if newest:
        bounds = [s.time_of(s.items[-limit]) for s in crowded]
        known = [b for b in bounds if b is not None]
        cut = max(known) if known else None
    else:
        bounds = [s.time_of(s.items[limit - 1]) for s in crowded]
        known = [b for b in bounds if b is not None]
        cut = min(known) if known else None
    kept_times: list[datetime] = []
    for item in series:
        kept = _keep(item, cut, limit, newest)
        kept_times.extend(t for t in (item.time_of(x) for x in kept) if t is not None)
        item.store(kept)
    return TemporalPage(entities, _content_range(window, cut, kept_times))


def _keep(series: _Series, cut: datetime | None, limit: int, newest: bool) -> list[Any]:
    def inside(item: Any) -> bool:
        at = series.time_of(item)
        if at is None or cut is None:
            return True
        return at >= cut if newest else at <= cut

    kept = [item for item in series.items if inside(item)]
    return kept[-limit:] if newest else kept[:limit]


def _content_range(window: Window, cut: datetime | None, times: list[datetime]) -> str:
    newest = window.last_n is not None
    start: datetime | None
    if newest:
        start = {"between": window.end_time_at, "before": window.time_at}.get(window.timerel or "")
        start = start or (max(times) if times else None)
    else:
        start = window.time_at if window.timerel in ("after", "between") else None
        start = start or (min(times) if times else None)
    end = cut or (min(times) if newest and times else max(times) if times else None)
    size = str(window.last_n) if newest else "*"
    return f"date-time {_text(start)}-{_text(end)}/{size}"


def _text(instant: datetime | None) -> str:
    """ISO 8601 in UTC with ``Z`` (now, if the answer held no instant at all)."""
    moment = (instant or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
