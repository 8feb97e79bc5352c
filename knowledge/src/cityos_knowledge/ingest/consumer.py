"""The ``knowledge-ingest`` consumer of ``acquisition.observations.v1``."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cityos_kernel.bus.consumer import ConsumerSpec, PublishingDeadLetter
from cityos_kernel.bus.port import Bus, Delivery
from cityos_kernel.events.topics import OBSERVATIONS
from cityos_knowledge.ingest.apply import GC_OBJECTS_PER_MESSAGE, ObservationApplier
from cityos_knowledge.store.database import KnowledgeStore

GROUP = "knowledge-ingest"


def ingest_consumer(
    store: KnowledgeStore,
    bus: Bus,
    *,
    after_commit: Callable[[], None] | None = None,
    python_phase: threading.Lock | None = None,
) -> ConsumerSpec:
    """The consumer spec the runtime runs: batches of observations into the stores.

    Observations that pass the topic's schema but not the store's rules (a GeoProperty that
    is not GeoJSON, an invalid tenant name) are published to ``platform.deadletter.v1``
    with the reason, and the rest of the batch is applied. ``python_phase``, when given, is
    held while a batch is decoded and while it is staged (see :func:`ingest_consumers`).
    """
    dead_letter = PublishingDeadLetter(bus)

    def reject(delivery: Delivery, reason: str) -> None:
        dead_letter(delivery, reason, group=GROUP)

    applier = ObservationApplier(
        store,
        vocabulary=store.settings.knowledge_default_vocabulary,
        reject=reject,
        after_commit=after_commit,
        python_phase=python_phase,
        gc_threshold=GC_OBJECTS_PER_MESSAGE * store.settings.knowledge_ingest_batch,
    )
    return ConsumerSpec(
        name="knowledge-ingest",
        group=GROUP,
        topics=[OBSERVATIONS],
        handler=applier,
        max_batch=store.settings.knowledge_ingest_batch,
        decode_lock=python_phase,
    )


def ingest_consumers(
    store: KnowledgeStore,
    bus: Bus,
    *,
    count: int,
    after_commit: Callable[[], None] | None = None,
) -> list[ConsumerSpec]:
    """``count`` members of the ``knowledge-ingest`` group, each with its own applier.

    The group splits the topic's partitions among them (an entity's observations stay in
    one partition, hence in one member, in order). Each member's Python work holds the GIL
    while the others wait on PostgreSQL, so two members keep two cores busy where one
    leaves the database idle while it decodes and the decoder idle while the database
    writes (docs/performance.md).

    The members share one lock for their pure-Python phases (decoding and staging a
    batch): started together, they would otherwise decode at the same time, sharing the
    GIL, then all wait on PostgreSQL at the same time; one at a time, each member's Python
    runs while the others' statements run (ADR 0060).
    """
    python_phase = threading.Lock() if count > 1 else None
    specs = []
    for number in range(1, count + 1):
        spec = ingest_consumer(store, bus, after_commit=after_commit, python_phase=python_phase)
        spec.name = f"knowledge-ingest-{number}" if count > 1 else spec.name
        specs.append(spec)
    return specs
