"""How the history table is laid out: a TimescaleDB hypertable, or monthly range partitions.

The choice is made once, at migration time (:func:`decide_layout`), by trying to enable the
``timescaledb`` extension; it is logged, recorded in ``cityos_knowledge.store_settings`` and
shown by the layer's readiness check. Every tenant schema is then created with that layout
(:func:`create_history`).

- **timescaledb**: ``attribute_instances`` becomes a hypertable on ``observed_at`` with a
  compression policy (segment by entity and attribute), an optional retention policy, and
  two continuous aggregates of numeric values, ``attribute_hourly`` and ``attribute_daily``.
- **partitioned**: the same table is range-partitioned by month; partitions are created
  ahead (at tenant creation and by the maintenance service) and on demand for the months a
  write touches (:class:`Partitions`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from sqlalchemy import Connection, Engine, MetaData, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.schema import CreateTable

from cityos_knowledge.store.tables import attribute_instances, store_settings

logger = logging.getLogger(__name__)

HistoryMode = Literal["timescaledb", "partitioned"]

#: Hypertable chunk size: a week keeps a city's chunk count small and compression effective.
CHUNK_INTERVAL = "7 days"


@dataclass(frozen=True)
class HistoryLayout:
    """The history layout chosen at migration time."""

    mode: HistoryMode
    detail: str
    toolkit: bool

    @property
    def timescaledb(self) -> bool:
        return self.mode == "timescaledb"


class StoreNotMigratedError(RuntimeError):
    """The knowledge migrations have not been applied to this database."""


def _try_extension(connection: Connection, name: str) -> str | None:
    """Enable an extension if the server has it; return its version, or None."""
    available = connection.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = :name"), {"name": name}
    ).first()
    if available is None:
        return None
    savepoint = connection.begin_nested()
    try:
        connection.execute(text(f'CREATE EXTENSION IF NOT EXISTS "{name}"'))
    except Exception as exc:  # e.g. timescaledb not in shared_preload_libraries
        savepoint.rollback()
        logger.warning("extension %s is installed but cannot be enabled: %s", name, exc)
        return None
    savepoint.commit()
    version = connection.execute(
        text("SELECT extversion FROM pg_extension WHERE extname = :name"), {"name": name}
    ).scalar_one()
    return str(version)


def decide_layout(connection: Connection) -> HistoryLayout:
    """Detect TimescaleDB (and its toolkit), record and log the history layout."""
    timescale = _try_extension(connection, "timescaledb")
    toolkit = _try_extension(connection, "timescaledb_toolkit") if timescale else None
    if timescale:
        layout = HistoryLayout(
            "timescaledb",
            f"history: TimescaleDB {timescale} hypertable, compression, hourly/daily "
            f"continuous aggregates; toolkit {toolkit or 'not installed'}",
            toolkit is not None,
        )
    else:
        layout = HistoryLayout(
            "partitioned", "history: partitioned by month (TimescaleDB not installed)", False
        )
    values = {
        "history_mode": layout.mode,
        "history_detail": layout.detail,
        "toolkit": "on" if layout.toolkit else "off",
    }
    statement = insert(store_settings)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[store_settings.c.key],
            set_={"value": statement.excluded.value, "decided_at": statement.excluded.decided_at},
        ),
        [{"key": key, "value": value} for key, value in values.items()],
    )
    logger.info("knowledge %s", layout.detail)
    return layout


def read_layout(connection: Connection) -> HistoryLayout:
    """The layout recorded by the migrations; raises when they were not applied."""
    try:
        result = connection.execute(select(store_settings.c.key, store_settings.c.value))
        rows = {key: value for key, value in result}
    except ProgrammingError as exc:
        raise StoreNotMigratedError(
            "the knowledge store is not migrated; run `cityos db upgrade`"
        ) from exc
    if "history_mode" not in rows:
        raise StoreNotMigratedError("the knowledge store is not migrated; run `cityos db upgrade`")
    mode: HistoryMode = "timescaledb" if rows["history_mode"] == "timescaledb" else "partitioned"
    return HistoryLayout(mode, rows.get("history_detail", mode), rows.get("toolkit") == "on")


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def create_history(
    connection: Connection,
    schema: str,
    layout: HistoryLayout,
    *,
    compress_after: str,
    retention: str | None,
    months_ahead: int,
) -> None:
    """Create ``attribute_instances`` in ``schema`` with the layout's storage."""
    table = attribute_instances.to_metadata(MetaData(schema=schema))
    if layout.timescaledb:
        connection.execute(CreateTable(table))
        _make_hypertable(connection, schema, compress_after=compress_after, retention=retention)
    else:
        table.dialect_options["postgresql"]["partition_by"] = "RANGE (observed_at)"
        connection.execute(CreateTable(table))
        _create_partitions(connection, schema, months_around(months_ahead))


def _make_hypertable(
    connection: Connection, schema: str, *, compress_after: str, retention: str | None
) -> None:
    """Hypertable, compression, retention and continuous aggregates (TimescaleDB only)."""
    qualified = f"{_quote(connection, schema)}.attribute_instances"
    regclass = f"{schema}.attribute_instances"
    connection.execute(
        text(
            "SELECT create_hypertable(CAST(:table AS regclass), 'observed_at', "
            "chunk_time_interval => CAST(:chunk AS interval))"
        ),
        {"table": regclass, "chunk": CHUNK_INTERVAL},
    )
    connection.execute(
        text(
            f"ALTER TABLE {qualified} SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'entity_id, name', "
            "timescaledb.compress_orderby = 'dataset_id, observed_at DESC')"
        )
    )
    connection.execute(
        text("SELECT add_compression_policy(CAST(:table AS regclass), CAST(:age AS interval))"),
        {"table": regclass, "age": compress_after},
    )
    if retention:
        connection.execute(
            text("SELECT add_retention_policy(CAST(:table AS regclass), CAST(:age AS interval))"),
            {"table": regclass, "age": retention},
        )
    # Identifiers below are our own constants and a quoted, generated schema name.
    for view, bucket, start_offset, end_offset, schedule in (
        ("attribute_hourly", "1 hour", "3 days", "1 hour", "30 minutes"),
        ("attribute_daily", "1 day", "35 days", "1 day", "1 hour"),
    ):
        create_view = (
            f"CREATE MATERIALIZED VIEW {_quote(connection, schema)}.{view} "  # noqa: S608
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            "SELECT entity_id, name, dataset_id, "
            f"time_bucket(INTERVAL '{bucket}', observed_at) AS bucket, "
            "count(*) AS total_count, count(value_number) AS number_count, "
            "sum(value_number) AS sum, sum(value_number * value_number) AS sumsq, "
            "min(value_number) AS min, max(value_number) AS max "
            f"FROM {qualified} GROUP BY entity_id, name, dataset_id, bucket WITH NO DATA"
        )
        connection.execute(text(create_view))
        connection.execute(
            text(
                "SELECT add_continuous_aggregate_policy(CAST(:view AS regclass), "
                "start_offset => CAST(:start AS interval), end_offset => CAST(:end AS interval), "
                "schedule_interval => CAST(:schedule AS interval))"
            ),
            {
                "view": f"{schema}.{view}",
                "start": start_offset,
                "end": end_offset,
                "schedule": schedule,
            },
        )


def month_start(moment: datetime | date) -> date:
    """The first day of the month ``moment`` falls in, in UTC (the partitions' time zone).

    Partition bounds are UTC midnights, so an aware datetime is converted to UTC first:
    ``2026-12-01T00:30:00+02:00`` is 30 November in UTC and belongs to November's
    partition. A naive datetime or a date is taken as UTC.
    """
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"attribute_instances_p{month.year:04d}{month.month:02d}"


class Partitions:
    """Creates monthly history partitions on demand for one database (partitioned layout).

    Remembers the (schema, month) pairs known to exist so that a batch does not ask the
    catalogue each time. With TimescaleDB it does nothing: chunks are created by the
    extension.
    """

    def __init__(self, engine: Engine, layout: HistoryLayout) -> None:
        self._engine = engine
        self._enabled = not layout.timescaledb
        self._known: set[tuple[str, date]] = set()
        self._lock = threading.Lock()

    def ensure(self, schema: str, months: Iterable[date]) -> int:
        """Create the partitions of ``months`` that do not exist yet; return how many.

        Runs in its own short transaction (a partition is remembered only once committed),
        so it may be called while the caller's write transaction is open: attaching takes
        a lock that does not conflict with writers. An empty partition left by a write that
        later failed is harmless. Concurrent creators are serialized by an advisory lock.
        """
        if not self._enabled:
            return 0
        wanted = sorted({month_start(month) for month in months})
        with self._lock:
            missing = [month for month in wanted if (schema, month) not in self._known]
        if not missing:
            return 0
        with self._engine.begin() as connection:
            created = _create_partitions(connection, schema, missing)
        with self._lock:
            self._known.update((schema, month) for month in missing)
        return created

    def forget(self, schema: str, months: Iterable[date]) -> None:
        """Stop remembering partitions that were dropped (a later write re-creates them)."""
        with self._lock:
            self._known.difference_update((schema, month_start(month)) for month in months)

    def ensure_ahead(self, schema: str, months_ahead: int, *, today: date | None = None) -> int:
        """Create the previous, current and next ``months_ahead`` monthly partitions."""
        return self.ensure(schema, months_around(months_ahead, today=today))


def partition_names(connection: Connection, schema: str) -> set[str]:
    """The names of the partitions ``schema``'s history table has now."""
    rows = connection.execute(
        text(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "JOIN pg_namespace ns ON ns.oid = parent.relnamespace "
            "WHERE ns.nspname = :schema AND parent.relname = 'attribute_instances'"
        ),
        {"schema": schema},
    )
    return {row[0] for row in rows}


def _create_partitions(connection: Connection, schema: str, months: list[date]) -> int:
    connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"cityos_knowledge.partitions:{schema}"},
    )
    existing = partition_names(connection, schema)
    created = 0
    quoted_schema = _quote(connection, schema)
    for month in months:
        name = partition_name(month)
        if name in existing:
            continue
        # CREATE + ATTACH rather than CREATE … PARTITION OF: ATTACH takes only a SHARE UPDATE
        # EXCLUSIVE lock on the parent, which does not wait for transactions writing to it.
        connection.execute(
            text(
                f"CREATE TABLE {quoted_schema}.{name} (LIKE {quoted_schema}.attribute_instances "
                "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
        )
        connection.execute(
            text(
                f"ALTER TABLE {quoted_schema}.attribute_instances ATTACH PARTITION "
                f"{quoted_schema}.{name} FOR VALUES FROM "
                f"('{month.isoformat()} 00:00:00+00') TO "
                f"('{next_month(month).isoformat()} 00:00:00+00')"
            )
        )
        created += 1
        logger.info("history partition %s.%s created", schema, name)
    return created


def months_around(months_ahead: int, *, today: date | None = None) -> list[date]:
    """The previous, current and next ``months_ahead`` months (first days)."""
    current = month_start(today or datetime.now(UTC))
    previous = date(current.year - (current.month == 1), (current.month - 2) % 12 + 1, 1)
    months = [previous, current]
    for _ in range(months_ahead):
        months.append(next_month(months[-1]))
    return months
