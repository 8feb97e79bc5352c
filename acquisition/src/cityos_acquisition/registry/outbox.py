"""Device events through a transactional outbox: written with the change, sent after commit.

A provisioning write stores its ``acquisition.devices.v1`` events in the registry's outbox
in the same transaction as the change (``RegistryStore`` write methods take ``events``).
After the commit the writing process relays at once; :class:`OutboxRelay`, a background
service of every acquisition process, relays whatever is left (a bus that was down, a
process that died between commit and publication). Relays of one database take turns on
an advisory lock, so events leave in outbox order (ADR 0028).

Delivery is at least once: a crash between the bus confirming and the rows being marked
sent publishes them again. Consumers of the topic are idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from prometheus_client import Counter

from cityos_kernel.bus.port import Bus, Record
from cityos_kernel.events.payloads import DeviceEventV1
from cityos_kernel.events.topics import DEVICES

logger = logging.getLogger(__name__)

SOURCE = "acquisition:registry"
PUBLISHED = Counter(
    "cityos_acquisition_outbox_published_total", "Device events relayed from the outbox"
)

#: Publishes records and returns once the bus confirmed them (``Bus.publish``).
Publish = Callable[[list[Record]], None]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event to publish once its transaction committed."""

    tenant: str
    topic: str
    key: str
    envelope: dict[str, Any]

    def record(self) -> Record:
        return Record(self.topic, self.key, orjson.dumps(self.envelope))


def device_event(tenant: str, event: DeviceEventV1) -> OutboxEvent:
    """``event`` as an outbox row of ``acquisition.devices.v1``, keyed by device id."""
    envelope = DEVICES.envelope(event, source=SOURCE, tenant=tenant)
    return OutboxEvent(
        tenant, DEVICES.name, event.device_id, orjson.loads(DEVICES.encode(envelope))
    )


class Outbox(Protocol):
    def relay_outbox(self, publish: Publish, limit: int = 500) -> int:
        """Publish unsent events in order (one relay at a time), mark them sent; how many."""
        ...


class OutboxRelay:
    """A :class:`cityos_kernel.layer.BackgroundService` publishing what is left in the outbox."""

    name = "acquisition-outbox-relay"

    def __init__(self, outbox: Outbox, bus: Bus, *, interval: float = 1.0) -> None:
        self._outbox = outbox
        self._bus = bus
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def relay_once(self) -> int:
        """Publish every pending event now; raises what the bus or the database raised."""
        total = 0
        while sent := self._outbox.relay_outbox(self._bus.publish):
            PUBLISHED.inc(sent)
            total += sent
        return total

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.relay_once()
            except Exception:
                logger.exception("relaying device events failed; trying again")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
