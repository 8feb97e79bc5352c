"""How the knowledge layer plugs into a cityos process (see ``cityos_kernel.layer``).

It contributes its migration history (the stores) and, when the process has a database,
the ingest consumer, the outbox relay, the store maintenance (with the live ``retention``
configuration key and the listener that applies a change of it at once) and the readiness
check that shows how history is kept.
"""

from __future__ import annotations

from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec, ReadinessCheck
from cityos_knowledge.ingest.consumer import ingest_consumers
from cityos_knowledge.outbox.relay import OutboxRelay
from cityos_knowledge.settings import KnowledgeSettings
from cityos_knowledge.store.database import MIGRATIONS, KnowledgeStore
from cityos_knowledge.store.maintenance import RETENTION_KEY, RetentionValue, StoreMaintenance
from cityos_support.config.broadcast import config_listener
from cityos_support.config.repository import ConfigRepository

#: How often the retention key is re-read when no broadcast came (a lost message).
RETENTION_REFRESH_SECONDS = 60.0


def readiness(store: KnowledgeStore) -> ReadinessCheck:
    """``knowledge``: the store answers and says how history is kept."""

    def check() -> str:
        with store.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        return store.layout.detail

    return ReadinessCheck("knowledge", check)


class KnowledgeLayer:
    """The knowledge layer as the composition root sees it."""

    name = "knowledge"

    def __init__(self, settings: KnowledgeSettings | None = None) -> None:
        self._settings = settings

    def migrations(self) -> list[MigrationSpec]:
        return [MIGRATIONS]

    def build(self, context: LayerContext) -> LayerParts:
        if context.database_url is None:
            return LayerParts()
        settings = self._settings or KnowledgeSettings()
        store = KnowledgeStore.from_url(context.database_url, settings)
        relay = OutboxRelay(
            store,
            context.bus,
            interval=settings.knowledge_relay_interval_seconds,
            coalesce=settings.knowledge_relay_coalesce_seconds,
        )
        retention = RetentionValue(
            repository=ConfigRepository(store.engine), refresh_seconds=RETENTION_REFRESH_SECONDS
        )
        return LayerParts(
            consumers=[
                *ingest_consumers(
                    store,
                    context.bus,
                    count=settings.knowledge_ingest_consumers,
                    after_commit=relay.wake,
                ),
                config_listener({RETENTION_KEY: retention}, process="knowledge"),
            ],
            services=[relay, StoreMaintenance(store, retention=retention)],
            readiness=[readiness(store)],
        )


def create() -> KnowledgeLayer:
    """Entry point used by the runtime."""
    return KnowledgeLayer()
