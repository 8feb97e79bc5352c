"""The support layer's consumer of ``support.audit.v1`` and its checkpoint service."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import cast

from cityos_kernel.bus.consumer import ConsumerSpec, Message
from cityos_kernel.events.envelope import Envelope
from cityos_kernel.events.payloads import AuditEventV1
from cityos_kernel.events.topics import AUDIT
from cityos_support.audit.store import AuditStore
from cityos_support.monitoring.metrics import AUDIT_RECORDS

logger = logging.getLogger(__name__)

AUDIT_GROUP = "support-audit"


def audit_consumer(store: AuditStore, *, group: str = AUDIT_GROUP) -> ConsumerSpec:
    """Records every audit event in the chain; offsets are committed after the commit."""

    def record_audit_events(batch: Sequence[Message]) -> None:
        events = [cast(Envelope[AuditEventV1], message.envelope) for message in batch]
        added = store.append(events)
        AUDIT_RECORDS.inc(added)
        if added != len(events):
            logger.info(
                "audit: %d of %d events were already recorded", len(events) - added, len(events)
            )

    return ConsumerSpec(
        name="support-audit", group=group, topics=[AUDIT], handler=record_audit_events
    )


class CheckpointService:
    """Signs a checkpoint of every chain that moved, every ``interval`` seconds."""

    name = "audit-checkpoints"

    def __init__(self, store: AuditStore, *, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                signed = self._store.checkpoint_moved_chains()
                if signed:
                    logger.info("audit: signed %d checkpoint(s)", signed)
            except Exception:
                logger.exception("audit: checkpointing failed; will retry")
