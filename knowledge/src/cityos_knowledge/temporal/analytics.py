"""Analytics with the TimescaleDB toolkit's hyperfunctions, where the extension exists.

``time_weight`` (time-weighted average), ``percentile_agg`` + ``approx_percentile``,
``counter_agg`` (delta and rate of a monotonic counter, resets handled) and ``lttb``
(largest-triangle-three-buckets downsampling) over one attribute of one entity in a time
window. On a database without ``timescaledb_toolkit`` each raises
:class:`NotAvailableOnThisDatabaseError`; none is emulated in Python. This SQL runs only
where the toolkit is installed, which the machines the tests run on are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, Integer, Text, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from cityos_knowledge.errors import BadRequestDataError, NotAvailableOnThisDatabaseError
from cityos_knowledge.store.history import HistoryLayout
from cityos_knowledge.store.tables import DEFAULT_DATASET, attribute_instances
from cityos_knowledge.temporal.params import TemporalQuery
from cityos_knowledge.temporal.reads import window

history = attribute_instances


@dataclass(frozen=True, slots=True)
class CounterStats:
    """What ``counter_agg`` says of a monotonic counter over the window."""

    delta: float | None
    rate_per_second: float | None


def require_toolkit(layout: HistoryLayout, what: str) -> None:
    if not layout.toolkit:
        raise NotAvailableOnThisDatabaseError(
            f"{what} needs the TimescaleDB toolkit (timescaledb_toolkit), "
            "which is not available on this database"
        )


def _series(
    entity_id: str, name: str, dataset_id: str | None, query: TemporalQuery
) -> list[ColumnElement[bool]]:
    return [
        history.c.entity_id == entity_id,
        history.c.name == name,
        history.c.dataset_id == (dataset_id or DEFAULT_DATASET),
        history.c.value_number.is_not(None),
        *window(query),
    ]


def time_weighted_average(
    connection: Connection,
    entity_id: str,
    name: str,
    dataset_id: str | None,
    query: TemporalQuery,
    *,
    method: str = "Linear",
) -> float | None:
    if method not in ("Linear", "LOCF"):
        raise BadRequestDataError("the time-weighting method is Linear or LOCF")
    weighted = func.time_weight(
        literal(method, Text), history.c.observed_at, history.c.value_number
    )
    value = connection.execute(
        select(func.average(weighted)).where(*_series(entity_id, name, dataset_id, query))
    ).scalar_one_or_none()
    return None if value is None else float(value)


def percentiles(
    connection: Connection,
    entity_id: str,
    name: str,
    dataset_id: str | None,
    query: TemporalQuery,
    fractions: Sequence[float],
) -> dict[float, float | None]:
    if not fractions or any(not 0 <= fraction <= 1 for fraction in fractions):
        raise BadRequestDataError("percentiles are fractions between 0 and 1")
    digest = (
        select(func.percentile_agg(history.c.value_number).label("digest"))
        .where(*_series(entity_id, name, dataset_id, query))
        .subquery()
    )
    row = connection.execute(
        select(
            *(
                func.approx_percentile(literal(fraction, Float()), digest.c.digest)
                for fraction in fractions
            )
        )
    ).one()
    return {
        fraction: None if value is None else float(value)
        for fraction, value in zip(fractions, row, strict=True)
    }


def counter(
    connection: Connection, entity_id: str, name: str, dataset_id: str | None, query: TemporalQuery
) -> CounterStats:
    aggregate = (
        select(func.counter_agg(history.c.observed_at, history.c.value_number).label("agg"))
        .where(*_series(entity_id, name, dataset_id, query))
        .subquery()
    )
    delta, rate = connection.execute(
        select(func.delta(aggregate.c.agg), func.rate(aggregate.c.agg))
    ).one()
    return CounterStats(
        None if delta is None else float(delta), None if rate is None else float(rate)
    )


def downsample(
    connection: Connection,
    entity_id: str,
    name: str,
    dataset_id: str | None,
    query: TemporalQuery,
    points: int,
) -> list[tuple[datetime, float]]:
    if points < 3:
        raise BadRequestDataError("LTTB downsampling needs at least 3 points")
    sampled = (
        select(
            func.lttb(
                history.c.observed_at, history.c.value_number, literal(points, Integer())
            ).label("series")
        )
        .where(*_series(entity_id, name, dataset_id, query))
        .subquery()
    )
    points_table: Any = func.unnest(sampled.c.series).table_valued("time", "value")
    rows = connection.execute(select(points_table.c.time, points_table.c.value))
    return [(row.time, float(row.value)) for row in rows]
