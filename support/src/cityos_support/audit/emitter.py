"""The small audit emitter every layer calls: one event per write, change or denial.

``AuditEmitter(bus, source="knowledge").emit(subject=..., action="entities:write",
target="urn:ngsi-ld:Parking:1", outcome="success", tenant=...)`` publishes an
``AuditEventV1`` on ``support.audit.v1`` keyed by subject and returns once the bus confirmed
it. Call it after the write committed (an audit event for a write that rolled back would be a
lie). ``emit_safely`` logs instead of raising, for paths that must not fail because the bus
is down (a denial is refused either way).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from cityos_kernel.bus.port import Bus, BusError, Record
from cityos_kernel.events.payloads import AuditEventV1
from cityos_kernel.events.topics import AUDIT

logger = logging.getLogger(__name__)

Outcome = Literal["success", "failure", "denied"]


class AuditEmitter:
    """Publishes audit events for one source (a layer or a process)."""

    def __init__(self, bus: Bus, *, source: str) -> None:
        self._bus = bus
        self._source = source

    def emit(
        self,
        *,
        subject: str,
        action: str,
        target: str,
        outcome: Outcome,
        tenant: str | None = None,
        client: str | None = None,
        correlation_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Publish one audit event and wait for the bus to confirm it."""
        payload = AuditEventV1(
            subject=subject,
            client=client,
            action=action,
            target=target,
            outcome=outcome,
            details=details or {},
        )
        envelope = AUDIT.envelope(
            payload, source=self._source, tenant=tenant, correlation_id=correlation_id
        )
        self._bus.publish([Record(AUDIT.name, subject, AUDIT.encode(envelope))])

    def emit_safely(self, **event: Any) -> bool:
        """Like :meth:`emit`, but logs a bus failure instead of raising; True when sent."""
        try:
            self.emit(**event)
        except BusError:
            logger.exception("audit event could not be published: %s", event.get("action"))
            return False
        return True
