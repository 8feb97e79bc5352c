"""The knowledge layer's handle on its database: engine, history layout, tenants, partitions."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event

from cityos_kernel.database import create_pooled_engine
from cityos_kernel.layer import MigrationSpec
from cityos_knowledge.settings import KnowledgeSettings
from cityos_knowledge.store.history import HistoryLayout, Partitions, read_layout
from cityos_knowledge.store.tenants import TenantRegistry

#: The knowledge layer's Alembic history, applied by ``cityos db upgrade``.
MIGRATIONS = MigrationSpec("knowledge", Path(__file__).parent / "migrations")


#: Set on every connection of the store's pool when it is opened (once, not per request).
#: Context queries read a few hundred rows through indexes; PostgreSQL nevertheless plans
#: many of them with parallel workers, whose start-up costs ten times the query (ADR 0017).
#: The statements that do gain from workers (temporal aggregations) opt in per transaction.
SESSION_SETTINGS = ("SET max_parallel_workers_per_gather = 0",)


def apply_session_settings(dbapi_connection: Any, _record: Any = None) -> None:
    """Apply :data:`SESSION_SETTINGS` on a new DBAPI connection (a pool ``connect`` event)."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            for statement in SESSION_SETTINGS:
                cursor.execute(statement)
    finally:
        dbapi_connection.autocommit = autocommit


def bind_schema(connection: Connection, schema: str) -> Connection:
    """The connection with the per-tenant tables bound to ``schema``."""
    return connection.execution_options(schema_translate_map={None: schema})


class KnowledgeStore:
    """One database of the knowledge layer. Reads the layout lazily (after migrations)."""

    def __init__(
        self,
        engine: Engine,
        settings: KnowledgeSettings | None = None,
    ) -> None:
        self.engine = engine
        if not event.contains(engine, "connect", apply_session_settings):
            event.listen(engine, "connect", apply_session_settings)
        self.settings = settings or KnowledgeSettings()
        self._layout: HistoryLayout | None = None
        self._partitions: Partitions | None = None
        self._tenants: TenantRegistry | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls, url: str, settings: KnowledgeSettings | None = None, *, pool_size: int = 5
    ) -> KnowledgeStore:
        engine = create_pooled_engine(url, pool_size=pool_size, max_overflow=5)
        return cls(engine, settings)

    def _load(self) -> None:
        with self._lock:
            if self._layout is not None:
                return
            with self.engine.connect() as connection:
                layout = read_layout(connection)
            self._partitions = Partitions(self.engine, layout)
            self._tenants = TenantRegistry(
                self.engine,
                layout,
                self._partitions,
                compress_after=self.settings.knowledge_compress_after,
                retention=self.settings.knowledge_retention,
                months_ahead=self.settings.knowledge_partitions_ahead,
            )
            self._layout = layout

    @property
    def layout(self) -> HistoryLayout:
        self._load()
        assert self._layout is not None
        return self._layout

    @property
    def partitions(self) -> Partitions:
        self._load()
        assert self._partitions is not None
        return self._partitions

    @property
    def tenants(self) -> TenantRegistry:
        self._load()
        assert self._tenants is not None
        return self._tenants

    def close(self) -> None:
        self.engine.dispose()
