"""Periodic upkeep of the stores: monthly history partitions created ahead of need."""

from __future__ import annotations

import logging

from cityos_knowledge.background import ThreadService
from cityos_knowledge.store.database import KnowledgeStore

logger = logging.getLogger(__name__)


class StoreMaintenance(ThreadService):
    """A background service that keeps every tenant's next months partitioned.

    Without TimescaleDB the history table needs a partition for a month before rows of that
    month arrive. Writes create missing ones on demand; this service creates them ahead, so
    the ingest normally never has to. With TimescaleDB there is nothing to do (chunks,
    compression and retention are the extension's background jobs).
    """

    name = "knowledge-maintenance"

    def __init__(self, store: KnowledgeStore, *, interval: float = 3600.0) -> None:
        super().__init__()
        self._store = store
        self._interval = interval

    def run_once(self) -> int:
        """Create the missing partitions of every tenant; return how many were created."""
        if self._store.layout.timescaledb:
            return 0
        months_ahead = self._store.settings.knowledge_partitions_ahead
        return sum(
            self._store.partitions.ensure_ahead(schema, months_ahead)
            for schema in self._store.tenants.all().values()
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                created = self.run_once()
                if created:
                    logger.info("maintenance created %d history partition(s)", created)
            except Exception:
                logger.exception("knowledge maintenance failed; trying again later")
            self._stop.wait(self._interval)
