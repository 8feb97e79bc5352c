"""Periodic upkeep of the stores: monthly history partitions created ahead, history retention.

The retention period comes from the configuration repository's ``retention`` key
(``history_days``, applied live: a broadcast change wakes the maintenance at once) and, when
that key was never written, from ``CITYOS_KNOWLEDGE_RETENTION``. Unset everywhere, nothing
is ever dropped.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Connection, text

from cityos_knowledge.background import ThreadService
from cityos_knowledge.store.database import KnowledgeStore
from cityos_knowledge.store.history import (
    month_start,
    months_around,
    next_month,
    partition_names,
)
from cityos_support.config.keys import RetentionSettings
from cityos_support.config.live import LiveValue

logger = logging.getLogger(__name__)

RETENTION_KEY = "retention"

PARTITIONS_DROPPED = Counter(
    "cityos_knowledge_history_partitions_dropped_total",
    "Monthly history partitions dropped because they were older than the retention period",
)

_PARTITION = re.compile(r"^attribute_instances_p(\d{4})(\d{2})$")


class RetentionValue(LiveValue[RetentionSettings]):
    """The live ``retention`` key; calls ``on_change`` when a broadcast change is applied."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(RETENTION_KEY, RetentionSettings, RetentionSettings(), **kwargs)
        self.on_change: Callable[[], None] | None = None

    def apply(self, version: int, value: Any) -> bool:
        applied = super().apply(version, value)
        if applied and self.on_change is not None:
            self.on_change()
        return applied


def month_bound(month: date) -> datetime:
    """The UTC midnight a monthly partition starts at."""
    return datetime(month.year, month.month, month.day, tzinfo=UTC)


class StoreMaintenance(ThreadService):
    """A background service that keeps every tenant's history partitioned and within retention.

    Without TimescaleDB the history table needs a partition for a month before rows of that
    month arrive. Writes create missing ones on demand; this service creates them ahead, so
    the ingest normally never has to, and drops (detach, then drop) the monthly partitions
    that lie entirely before ``now - retention``; the current and future months never are.
    With TimescaleDB chunks and compression are the extension's background jobs; this
    service only (re)sets each tenant's retention policy when the period changes.
    """

    name = "knowledge-maintenance"

    def __init__(
        self,
        store: KnowledgeStore,
        *,
        interval: float = 3600.0,
        retention: LiveValue[RetentionSettings] | None = None,
    ) -> None:
        super().__init__()
        self._store = store
        self._interval = interval
        self._retention = retention
        self._wake = threading.Event()
        self._policies: dict[str, str | None] = {}
        if isinstance(retention, RetentionValue):
            retention.on_change = self.wake

    def wake(self) -> None:
        """Run the maintenance now (the retention period changed)."""
        self._wake.set()

    def retention_period(self) -> str | None:
        """The history retention in force, as a PostgreSQL interval, or None (keep all).

        The configuration repository wins when its ``retention`` key was ever written (even
        to unset ``history_days``): it is what an operator changes at runtime, audited and
        broadcast. ``CITYOS_KNOWLEDGE_RETENTION`` is the deployment's fallback.
        """
        if self._retention is not None:
            settings = self._retention.get()
            if self._retention.version > 0:
                days = settings.history_days
                return None if days is None else f"{days} days"
        return self._store.settings.knowledge_retention

    def run_once(self) -> int:
        """Create missing partitions and apply retention; return how many were created."""
        period = self.retention_period()
        schemas = list(self._store.tenants.all().values())
        if self._store.layout.timescaledb:
            for schema in schemas:
                self._set_policy(schema, period)
            return 0
        cutoff = self._cutoff(period)
        months_ahead = self._store.settings.knowledge_partitions_ahead
        created = 0
        for schema in schemas:
            wanted = [
                month
                for month in months_around(months_ahead)
                if cutoff is None or month_bound(next_month(month)) > cutoff
            ]
            created += self._store.partitions.ensure(schema, wanted)
            if cutoff is not None:
                self.drop_before(schema, cutoff)
        return created

    def _cutoff(self, period: str | None) -> datetime | None:
        if period is None:
            return None
        with self._store.engine.connect() as connection:
            cutoff = connection.execute(
                text("SELECT now() - CAST(:age AS interval)"), {"age": period}
            ).scalar_one()
        assert isinstance(cutoff, datetime)
        return cutoff

    def drop_before(self, schema: str, cutoff: datetime) -> list[str]:
        """Detach and drop ``schema``'s partitions lying entirely before ``cutoff``.

        The current month's partition and later ones are never dropped, whatever the cut-off.
        """
        current = month_start(datetime.now(UTC))
        dropped: list[tuple[str, date]] = []
        with self._store.engine.begin() as connection:
            quoted = connection.dialect.identifier_preparer.quote(schema)
            # DETACH locks the whole history table: rather fail (and retry next run) than
            # queue behind a long query and hold every writer behind us meanwhile.
            connection.execute(text("SET LOCAL lock_timeout = '5s'"))
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"cityos_knowledge.partitions:{schema}"},
            )
            for name, month in _partitions(connection, schema):
                if month >= current or month_bound(next_month(month)) > cutoff:
                    continue
                connection.execute(
                    text(
                        f"ALTER TABLE {quoted}.attribute_instances DETACH PARTITION {quoted}.{name}"
                    )
                )
                connection.execute(text(f"DROP TABLE {quoted}.{name}"))
                dropped.append((name, month))
        self._store.partitions.forget(schema, [month for _, month in dropped])
        for name, _ in dropped:
            logger.warning(
                "history partition %s.%s dropped: older than the retention cut-off %s",
                schema,
                name,
                cutoff.isoformat(),
            )
        PARTITIONS_DROPPED.inc(len(dropped))
        return [name for name, _ in dropped]

    def _set_policy(self, schema: str, period: str | None) -> None:
        """TimescaleDB: replace ``schema``'s retention policy when the period changed.

        Not exercised by the test suite (the test server has no TimescaleDB).
        """
        if schema in self._policies and self._policies[schema] == period:
            return
        table = f"{schema}.attribute_instances"
        with self._store.engine.begin() as connection:
            connection.execute(
                text("SELECT remove_retention_policy(CAST(:table AS regclass), if_exists => true)"),
                {"table": table},
            )
            if period is not None:
                connection.execute(
                    text(
                        "SELECT add_retention_policy(CAST(:table AS regclass), "
                        "CAST(:age AS interval))"
                    ),
                    {"table": table, "age": period},
                )
        self._policies[schema] = period
        logger.info("history retention of %s set to %s", schema, period or "keep everything")

    def _stopping(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                created = self.run_once()
                if created:
                    logger.info("maintenance created %d history partition(s)", created)
            except Exception:
                logger.exception("knowledge maintenance failed; trying again later")
            self._wake.wait(self._interval)


def _partitions(connection: Connection, schema: str) -> list[tuple[str, date]]:
    """``schema``'s monthly history partitions (name, first day), oldest first."""
    found = []
    for name in partition_names(connection, schema):
        match = _PARTITION.match(name)
        if match:
            found.append((name, date(int(match[1]), int(match[2]), 1)))
    return sorted(found, key=lambda item: item[1])
