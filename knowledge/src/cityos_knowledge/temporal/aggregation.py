"""aggregatedValues: ``<attr>: {"type", "<method>": [[value, start, end], …]}``, in SQL.

Periods come from ``aggrPeriodDuration``: ``date_bin`` for exact spans starting where the
query's time range starts (``timeAt`` for after/between, else the oldest instance the
query selects), calendar periods for any whole number of months or years (P1M, P3M, P1Y,
P2Y…: on a grid of months counted in UTC from January of year 0, so P3M gives quarters,
P6M half-years, P1Y calendar years and P2Y even years), and one period for the whole
window when it is absent or ``PT0S``. Numeric methods (sum, avg, min, max, stddev, sumsq)
use the instances' numeric values; totalCount and distinctCount count every instance.
With TimescaleDB, hourly and daily aggregations from a lower bound on a bucket edge are
read from the continuous aggregates instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import MAXYEAR, MINYEAR, UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Executable,
    Float,
    Integer,
    Interval,
    Text,
    and_,
    cast,
    column,
    func,
    literal,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from cityos_knowledge.entities.attributes import format_datetime
from cityos_knowledge.store.tables import DEFAULT_DATASET, attributes
from cityos_knowledge.temporal.params import TemporalQuery
from cityos_knowledge.temporal.reads import (
    AttributeKey,
    fold,
    history,
    plain,
    selection,
    time_column,
    window,
)

#: The grid of the continuous aggregates' hourly and daily buckets.
DEFAULT_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

#: From this many instances (the planner's estimate) an aggregation may use parallel
#: workers: each then has tens of thousands of rows to read, well above a worker's start-up
#: cost, which dominated one entity's year of 15-minute data (docs/performance.md, ADR 0062).
PARALLEL_INSTANCES = 200_000


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON)`` of a statement, compiled like the statement itself (bound
    parameters, the tenant's schema)."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.statement, **kw))


def estimated_rows(connection: Connection, statement: Select[Any]) -> float:
    """The largest row count the planner expects anywhere in the statement's plan: for an
    aggregation, the instances it reads."""
    plan = connection.execute(_Explain(statement)).scalar_one()
    largest, pending = 0.0, [plan[0]["Plan"]]
    while pending:
        node = pending.pop()
        largest = max(largest, float(node.get("Plan Rows", 0)))
        pending.extend(node.get("Plans", ()))
    return largest


def allow_parallel_workers(connection: Connection) -> None:
    """Let the rest of this transaction plan with parallel workers (ADR 0062).

    The store's connections plan serially (ADR 0017). PostgreSQL also expects one period
    per instance (it cannot know that a period holds many), so it prices sending each
    worker's partial aggregates to the leader as if they were all the instances and keeps
    the plan serial; a zero transfer cost corrects that estimate.
    """
    connection.execute(
        text(
            "SET LOCAL max_parallel_workers_per_gather TO DEFAULT; "
            "SET LOCAL parallel_tuple_cost = 0"
        )
    )


_NUMERIC_METHODS: dict[str, Any] = {
    "sum": lambda: func.sum(history.c.value_number),
    "avg": lambda: func.avg(history.c.value_number),
    "min": lambda: func.min(history.c.value_number),
    "max": lambda: func.max(history.c.value_number),
    "stddev": lambda: func.stddev_samp(history.c.value_number),
    "sumsq": lambda: func.sum(history.c.value_number * history.c.value_number),
}


def _method_column(method: str) -> ColumnElement[Any]:
    if method == "totalCount":
        return func.count()
    if method == "distinctCount":
        return func.count(
            func.coalesce(func.to_jsonb(history.c.value_number), history.c.value).distinct()
        )
    return cast(_NUMERIC_METHODS[method](), Float)


#: Calendar periods ``date_trunc`` gives, by their number of months.
_TRUNCATED = {1: "month", 12: "year"}


def _bucket(
    query: TemporalQuery, at: ColumnElement[Any], origin: datetime | None
) -> ColumnElement[Any] | None:
    """Each instance's period, to group by: its start (``date_bin``, or ``date_trunc`` for
    P1M and P1Y, a tenth faster than the month index over 1M instances), or for other
    calendar periods the index of its first month (see ``_month_index``)."""
    period = query.aggr_period
    if period is None:
        return None
    if period.months:
        unit = _TRUNCATED.get(period.months)
        if unit is not None:
            return func.date_trunc(literal(unit, Text), at, literal("UTC", Text))
        # Years in a timestamptz the API accepts are positive: integer division floors.
        return _month_index(at) // period.months * period.months
    origin = query.time_at if query.timerel in ("after", "between") else origin
    return func.date_bin(
        literal(period.span, Interval()), at, literal(origin, TIMESTAMP(timezone=True))
    )


def _month_index(at: ColumnElement[Any]) -> ColumnElement[Any]:
    """``year * 12 + month - 1`` of an instant, in UTC: months counted from January of year
    0, the grid of calendar periods."""
    utc = func.timezone(literal("UTC", Text), at)
    year = cast(func.date_part(literal("year", Text), utc), Integer)
    return year * 12 + cast(func.date_part(literal("month", Text), utc), Integer) - 1


def _period_end(query: TemporalQuery, start: datetime) -> datetime:
    period = query.aggr_period
    assert period is not None
    if not period.months:
        return start + period.span
    return _month_start(start.year * 12 + start.month - 1 + period.months)


def _month_start(index: int) -> datetime:
    """The first instant of month ``year * 12 + month - 1`` (UTC), kept within what a
    datetime holds: the grid's first period starts in year 0, and a long period can end
    after year 9999."""
    year, month = divmod(index, 12)
    if year < MINYEAR:
        return datetime.min.replace(tzinfo=UTC)
    if year > MAXYEAR:
        return datetime.max.replace(tzinfo=UTC)
    return datetime(year, month + 1, 1, tzinfo=UTC)


def aggregated_values(
    connection: Connection,
    ids: Sequence[str],
    names: Sequence[str] | None,
    query: TemporalQuery,
) -> dict[str, dict[str, Any]]:
    """entity id → attribute name → aggregatedValues object (or list per datasetId)."""
    at = time_column(query.timeproperty)
    origin = None
    period = query.aggr_period
    if query.timerel not in ("after", "between") and period is not None and not period.months:
        # No lower bound: the range, and so the first period, starts at the oldest instance.
        origin = connection.execute(
            select(func.min(at)).where(*selection(ids, names), *window(query))
        ).scalar_one()
        if origin is None:
            return {}
    bucket = _bucket(query, at, origin)
    # A key column that the WHERE clause pins to one value (one entity, one attribute) is
    # filled in here instead of being hashed for every instance.
    constant_id = ids[0] if len(ids) == 1 else None
    constant_name = names[0] if names is not None and len(names) == 1 else None
    keys = [
        *([] if constant_id is not None else [history.c.entity_id]),
        *([] if constant_name is not None else [history.c.name]),
        history.c.dataset_id,
    ]
    columns: list[ColumnElement[Any]] = [
        *keys,
        func.min(history.c.kind).label("kind"),
    ]
    if bucket is not None:
        # An integer is read several times faster than a timestamptz, and each period is
        # made a datetime once (it repeats across keys), in ``_span``: computed per period,
        # microseconds since the epoch, or for calendar periods the first month's index.
        assert period is not None
        value: ColumnElement[Any] = bucket
        if not period.months:
            value = cast(func.extract("epoch", bucket) * 1_000_000, BigInteger)
        elif period.months in _TRUNCATED:
            value = _month_index(bucket)
        epoch = value.label("bucket")
        columns.append(epoch)
    else:
        columns.extend([func.min(at).label("first"), func.max(at).label("last")])
    columns.extend(_method_column(m).label(f"m_{m}") for m in query.aggr_methods)
    group = [*keys, bucket] if bucket is not None else keys
    statement = select(*columns).where(*selection(ids, names), *window(query)).group_by(*group)
    if bucket is not None:
        # Ordered by the output column, not by a grouping key (the keys are sorted below,
        # in Python): PostgreSQL then hashes the instances into their periods and sorts
        # only the periods. Given an order it can share with the grouping, it sorts every
        # instance first (it expects one period per instance): a third slower for one
        # entity (docs/performance.md).
        statement = statement.order_by(epoch)
    # Enough memory to hash the groups: sorting ~1M rows by their long text keys instead
    # took three times as long (measured, docs/performance.md). Local to the transaction.
    connection.execute(text("SET LOCAL work_mem = '64MB'"))
    if len(ids) > 1 and estimated_rows(connection, statement) >= PARALLEL_INSTANCES:
        allow_parallel_workers(connection)
    result = connection.execute(statement)
    try:
        # Plain tuples from the driver: SQLAlchemy's rows cost a microsecond more each.
        rows = result.cursor.fetchall()
    finally:
        result.close()
    return fold(_collect(query, rows, len(keys), _key_reader(constant_id, constant_name)))


def _collect(
    query: TemporalQuery, rows: Sequence[Any], key_count: int, full_key: Any
) -> dict[AttributeKey, dict[str, Any]]:
    """aggregatedValues per (entity id, attribute name, datasetId), sorted by that key, from
    rows of (the key columns not pinned, kind, bucket or first and last, the methods'
    values) ordered by period."""
    methods = query.aggr_methods
    bucketed = query.aggr_period is not None
    found: dict[tuple[Any, ...], tuple[dict[str, Any], tuple[list[Any], ...]]] = {}
    # Periods repeat across entities and attributes: format each one once.
    spans: dict[Any, tuple[str, str]] = {}
    first_value = key_count + (2 if bucketed else 3)
    for row in rows:
        key = row[:key_count]
        entry = found.get(key)
        if entry is None:
            lists: tuple[list[Any], ...] = tuple([] for _ in methods)
            entry = found[key] = (
                {"type": row[key_count], **dict(zip(methods, lists, strict=True))},
                lists,
            )
        moment = row[key_count + 1] if bucketed else row[key_count + 1 : first_value]
        span = spans.get(moment)
        if span is None:
            start, end = _span(query, moment)
            span = spans[moment] = (format_datetime(start), format_datetime(end))
        start_text, end_text = span
        for values, value in zip(entry[1], row[first_value:], strict=True):
            if value is not None:
                # Counts are integers already; integral doubles become integers.
                if type(value) is float and value.is_integer() and -_EXACT < value < _EXACT:
                    value = int(value)
                values.append([value, start_text, end_text])
    per_key: dict[AttributeKey, dict[str, Any]] = {}
    for key, (target, _lists) in sorted((full_key(k), e) for k, e in found.items()):
        if key[2] != DEFAULT_DATASET:
            target["datasetId"] = key[2]
        per_key[key] = target
    return per_key


#: Doubles from here on are not all integers: they stay floats (as ``reads.plain``).
_EXACT = 2.0**53

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _key_reader(constant_id: str | None, constant_name: str | None) -> Any:
    """(entity id, attribute name, datasetId) from the key columns the statement did not
    pin to a constant."""
    if constant_id is not None and constant_name is not None:
        return lambda key: (constant_id, constant_name, key[0])
    if constant_id is not None:
        return lambda key: (constant_id, key[0], key[1])
    if constant_name is not None:
        return lambda key: (key[0], constant_name, key[1])
    return lambda key: (key[0], key[1], key[2])


def _span(query: TemporalQuery, moment: Any) -> tuple[datetime, datetime]:
    """A period's start and end, from its bucket (see ``_bucket``) or, over the whole
    window, from the first and last instants."""
    if query.aggr_period is not None:
        months = query.aggr_period.months
        if months:
            return _month_start(moment), _month_start(moment + months)
        bucket = _EPOCH + timedelta(microseconds=moment)
        return bucket, _period_end(query, bucket)
    first, last = moment
    start = query.time_at if query.timerel in ("after", "between") else first
    if query.timerel == "between":
        end = query.end_time_at
    elif query.timerel == "before":
        end = query.time_at
    else:
        end = last
    assert start is not None
    assert end is not None
    return start, end


def rollup_answerable(query: TemporalQuery, *, timescaledb: bool) -> str | None:
    """The continuous aggregate that can answer this aggregation exactly, if any.

    Only with TimescaleDB: hourly/daily periods on observedAt from a lower bound (after,
    between) on the buckets' grid, and methods a rollup row can give exactly (not
    distinctCount).
    """
    period = query.aggr_period
    if not timescaledb or period is None or period.months or query.last_n is not None:
        return None
    if query.timeproperty != "observedAt" or "distinctCount" in query.aggr_methods:
        return None
    view = {timedelta(hours=1): "attribute_hourly", timedelta(days=1): "attribute_daily"}.get(
        period.span
    )
    if view is None:
        return None
    if query.timerel not in ("after", "between"):
        return None  # periods start at the oldest instance, not on the rollup's grid
    for bound in (query.time_at, query.end_time_at):
        if bound is not None and (bound - DEFAULT_ORIGIN) % period.span:
            return None
    return view


def rollup_values(
    connection: Connection,
    view: str,
    schema: str,
    ids: Sequence[str],
    names: Sequence[str] | None,
    query: TemporalQuery,
) -> dict[str, dict[str, Any]]:
    """aggregatedValues from a TimescaleDB continuous aggregate (see ``rollup_answerable``).

    Exercised only where TimescaleDB is installed (not on the machines the tests run on).
    """
    rollup = table(
        view,
        column("entity_id"),
        column("name"),
        column("dataset_id"),
        column("bucket"),
        column("total_count"),
        column("number_count"),
        column("sum"),
        column("sumsq"),
        column("min"),
        column("max"),
        schema=schema,
    )
    c = rollup.c
    clauses: list[ColumnElement[bool]] = [c.entity_id.in_(list(ids))]
    if names is not None:
        clauses.append(c.name.in_(list(names)))
    if query.timerel == "before":
        clauses.append(c.bucket < query.time_at)
    elif query.timerel == "after":
        clauses.append(c.bucket >= query.time_at)
    elif query.timerel == "between":
        clauses.extend([c.bucket >= query.time_at, c.bucket < query.end_time_at])
    n = cast(c.number_count, Float)
    methods: dict[str, ColumnElement[Any]] = {
        "totalCount": c.total_count,
        "sum": c.sum,
        "avg": c.sum / func.nullif(n, 0),
        "min": c.min,
        "max": c.max,
        "sumsq": c.sumsq,
        "stddev": func.sqrt(
            func.greatest((c.sumsq - c.sum * c.sum / func.nullif(n, 0)) / func.nullif(n - 1, 0), 0)
        ),
    }
    statement = (
        select(
            c.entity_id,
            c.name,
            c.dataset_id,
            c.bucket,
            *(methods[m].label(f"m_{m}") for m in query.aggr_methods),
        )
        .where(and_(*clauses))
        .order_by(c.entity_id, c.name, c.dataset_id, c.bucket)
    )
    kinds = _kinds(connection, ids, names)
    per_key: dict[AttributeKey, dict[str, Any]] = {}
    for row in connection.execute(statement):
        key = (row.entity_id, row.name, row.dataset_id)
        target = per_key.setdefault(
            key, {"type": kinds.get(key, "Property"), **{m: [] for m in query.aggr_methods}}
        )
        if row.dataset_id != DEFAULT_DATASET:
            target["datasetId"] = row.dataset_id
        start, end = format_datetime(row.bucket), format_datetime(_period_end(query, row.bucket))
        for method in query.aggr_methods:
            value = getattr(row, f"m_{method}")
            if value is not None:
                target[method].append([plain(float(value)), start, end])
    return fold(per_key)


def _kinds(
    connection: Connection, ids: Sequence[str], names: Sequence[str] | None
) -> dict[AttributeKey, str]:
    clauses = [attributes.c.entity_id.in_(list(ids))]
    if names is not None:
        clauses.append(attributes.c.name.in_(list(names)))
    rows = connection.execute(
        select(
            attributes.c.entity_id, attributes.c.name, attributes.c.dataset_id, attributes.c.kind
        ).where(*clauses)
    )
    return {(r.entity_id, r.name, r.dataset_id): r.kind for r in rows}
