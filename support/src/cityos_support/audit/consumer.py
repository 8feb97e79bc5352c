"""The support layer's consumer of ``support.audit.v1`` and its checkpoint service."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

from cityos_kernel.bus.consumer import ConsumerSpec, Message
from cityos_kernel.events.envelope import Envelope
from cityos_kernel.events.payloads import AuditEventV1
from cityos_kernel.events.topics import AUDIT
from cityos_support.audit.store import AuditStore
from cityos_support.monitoring.metrics import AUDIT_RECORDS
from cityos_support.periodic import PeriodicService

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


class CheckpointService(PeriodicService):
    """Signs a checkpoint of every chain that moved, every ``interval`` seconds."""

    name = "audit-checkpoints"

    def __init__(self, store: AuditStore, *, interval: float) -> None:
        super().__init__(interval=interval)
        self._store = store

    def run_once(self) -> int:
        signed = self._store.checkpoint_moved_chains()
        if signed:
            logger.info("audit: signed %d checkpoint(s)", signed)
        return signed
