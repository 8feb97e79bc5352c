"""Temporal query parameters (ETSI GS CIM 009 §4.11, §6.18-6.19), parsed and checked.

``timerel`` before/after/between with ``timeAt`` and ``endTimeAt``; ``timeproperty``
observedAt (default), createdAt, modifiedAt or deletedAt (the deletions the history
recorded, which the other three leave out); ``lastN``; ``aggrMethods`` with
``aggrPeriodDuration`` (ISO 8601 duration). Semantics of the time filter (4.11): *before*
keeps instants strictly before ``timeAt`` (an exclusive bound), *after* those from
``timeAt`` on (an inclusive bound), *between* from ``timeAt`` (included) to ``endTimeAt``
(excluded). ``timeAt`` and ``endTimeAt`` are DateTimes (4.6.3): a bare date is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cityos_knowledge.entities.attributes import parse_datetime
from cityos_knowledge.errors import BadRequestDataError

TimeRelation = Literal["before", "after", "between"]
TimeProperty = Literal["observedAt", "createdAt", "modifiedAt", "deletedAt"]

AGGREGATION_METHODS = (
    "totalCount",
    "distinctCount",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "sumsq",
)

_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


@dataclass(frozen=True, slots=True)
class Period:
    """An ISO 8601 duration: calendar months, plus an exact time span."""

    months: int
    span: timedelta
    text: str

    @property
    def is_zero(self) -> bool:
        return self.months == 0 and not self.span


#: The longest aggregation period answered: longer ones cannot be represented as timestamps.
_LONGEST_PERIOD_MONTHS = 10_000 * 12
_LONGEST_PERIOD = timedelta(days=10_000 * 366)


def parse_duration(text: str) -> Period:
    """``P1D``, ``PT15M``, ``P1M``, ``P3M``, ``P2Y``, ``PT0S``… (BadRequestData when
    malformed, or when it mixes months or years with days or time)."""
    match = _DURATION.fullmatch(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestDataError(f"aggrPeriodDuration {text!r} is not an ISO 8601 duration")
    parts = {key: float(value) if value else 0.0 for key, value in match.groupdict().items()}
    months = int(parts["years"] * 12 + parts["months"])
    try:
        span = timedelta(
            weeks=parts["weeks"],
            days=parts["days"],
            hours=parts["hours"],
            minutes=parts["minutes"],
            seconds=parts["seconds"],
        )
    except OverflowError:
        span = _LONGEST_PERIOD * 2
    if months > _LONGEST_PERIOD_MONTHS or span > _LONGEST_PERIOD:
        raise BadRequestDataError(
            f"aggrPeriodDuration {text!r} is longer than 10,000 years, the longest period answered"
        )
    if months and span:
        raise BadRequestDataError(
            f"aggrPeriodDuration {text!r} mixes months or years with days or time; "
            "use one or the other"
        )
    return Period(months, span, text)


@dataclass(frozen=True, slots=True)
class TemporalQuery:
    """The time window, sampling and aggregation of a temporal request."""

    timerel: TimeRelation | None = None
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    timeproperty: TimeProperty = "observedAt"
    last_n: int | None = None
    aggr_methods: tuple[str, ...] = ()
    aggr_period: Period | None = None
    #: At most this many instances per attribute and datasetId (oldest first, or the newest
    #: with ``lastN``): what an API that pages its answers needs to read, not a parameter.
    instance_limit: int | None = None

    @property
    def aggregated(self) -> bool:
        return bool(self.aggr_methods)


def parse_temporal_query(
    parameters: Mapping[str, str], *, require_timerel: bool = False
) -> TemporalQuery:
    """Parse the temporal parameters of a query string (NGSI-LD names)."""
    get = parameters.get
    timerel = get("timerel")
    if timerel is not None and timerel not in ("before", "after", "between"):
        raise BadRequestDataError("timerel must be before, after or between")
    time_at = _instant("timeAt", get("timeAt"))
    end_time_at = _instant("endTimeAt", get("endTimeAt"))
    if timerel is None and require_timerel:
        raise BadRequestDataError("a temporal query needs timerel and timeAt")
    if timerel is not None and time_at is None:
        raise BadRequestDataError(f"timerel={timerel} needs timeAt")
    if timerel == "between":
        if end_time_at is None:
            raise BadRequestDataError("timerel=between needs endTimeAt")
        if time_at is not None and end_time_at <= time_at:
            raise BadRequestDataError("endTimeAt must be after timeAt")
    if timerel is None and (time_at is not None or end_time_at is not None):
        raise BadRequestDataError("timeAt and endTimeAt need timerel")
    timeproperty = get("timeproperty", "observedAt")
    if timeproperty not in ("observedAt", "createdAt", "modifiedAt", "deletedAt"):
        raise BadRequestDataError(
            "timeproperty must be observedAt, createdAt, modifiedAt or deletedAt"
        )
    last_n = None
    if (text := get("lastN")) is not None:
        if not text.isdigit() or int(text) < 1:
            raise BadRequestDataError("lastN must be a positive integer")
        last_n = int(text)
    methods: tuple[str, ...] = ()
    if (text := get("aggrMethods")) is not None:
        methods = tuple(dict.fromkeys(m.strip() for m in text.split(",")))
        unknown = [m for m in methods if m not in AGGREGATION_METHODS]
        if unknown or not methods:
            raise BadRequestDataError(
                f"unknown aggrMethods {', '.join(unknown) or text!r}; "
                f"use {', '.join(AGGREGATION_METHODS)}"
            )
    period = None
    if (text := get("aggrPeriodDuration")) is not None:
        if not methods:
            raise BadRequestDataError("aggrPeriodDuration needs aggrMethods")
        period = parse_duration(text)
    return TemporalQuery(
        timerel=timerel,  # type: ignore[arg-type]
        time_at=time_at,
        end_time_at=end_time_at if timerel == "between" else None,
        timeproperty=timeproperty,  # type: ignore[arg-type]
        last_n=last_n,
        aggr_methods=methods,
        aggr_period=None if period is None or period.is_zero else period,
    )


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    if _DATE_ONLY.fullmatch(text):
        raise BadRequestDataError(f"{name} must be a DateTime (date and time), not {text!r}")
    return parse_datetime(text, name)
