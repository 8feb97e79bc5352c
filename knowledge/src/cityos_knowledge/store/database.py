"""The knowledge layer's handle on its database: engine, history layout, tenants, partitions."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine

from cityos_kernel.database import sqlalchemy_url
from cityos_kernel.layer import MigrationSpec
from cityos_knowledge.settings import KnowledgeSettings
from cityos_knowledge.store.history import HistoryLayout, Partitions, read_layout
from cityos_knowledge.store.tenants import TenantRegistry

#: The knowledge layer's Alembic history, applied by ``cityos db upgrade``.
MIGRATIONS = MigrationSpec("knowledge", Path(__file__).parent / "migrations")


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
        self.settings = settings or KnowledgeSettings()
        self._layout: HistoryLayout | None = None
        self._partitions: Partitions | None = None
        self._tenants: TenantRegistry | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls, url: str, settings: KnowledgeSettings | None = None, *, pool_size: int = 5
    ) -> KnowledgeStore:
        engine = create_engine(
            sqlalchemy_url(url), pool_size=pool_size, max_overflow=5, pool_pre_ping=True
        )
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
