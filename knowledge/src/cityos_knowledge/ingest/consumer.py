"""The ``knowledge-ingest`` consumer of ``acquisition.observations.v1``."""

from __future__ import annotations

from collections.abc import Callable

from cityos_kernel.bus.consumer import ConsumerSpec, PublishingDeadLetter
from cityos_kernel.bus.port import Bus, Delivery
from cityos_kernel.events.topics import OBSERVATIONS
from cityos_knowledge.ingest.apply import ObservationApplier
from cityos_knowledge.store.database import KnowledgeStore

GROUP = "knowledge-ingest"


def ingest_consumer(
    store: KnowledgeStore,
    bus: Bus,
    *,
    after_commit: Callable[[], None] | None = None,
) -> ConsumerSpec:
    """The consumer spec the runtime runs: batches of observations into the stores.

    Observations that pass the topic's schema but not the store's rules (a GeoProperty that
    is not GeoJSON, an invalid tenant name) are published to ``platform.deadletter.v1``
    with the reason, and the rest of the batch is applied.
    """
    dead_letter = PublishingDeadLetter(bus)

    def reject(delivery: Delivery, reason: str) -> None:
        dead_letter(delivery, reason, group=GROUP)

    applier = ObservationApplier(
        store,
        vocabulary=store.settings.knowledge_default_vocabulary,
        reject=reject,
        after_commit=after_commit,
    )
    return ConsumerSpec(
        name="knowledge-ingest",
        group=GROUP,
        topics=[OBSERVATIONS],
        handler=applier,
        max_batch=store.settings.knowledge_ingest_batch,
    )
