"""Announcing configuration changes on ``support.config.changed.v1`` and applying them.

Every running process that cares about a key listens with its own consumer group (a
broadcast: each process must see every change), so a change written through ``/admin/api``
is applied everywhere without a restart. The message carries the new value; a process that
missed it still re-reads the repository within its refresh interval (:mod:`.live`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from cityos_kernel.bus.consumer import ConsumerSpec, Message
from cityos_kernel.bus.port import Bus, Record
from cityos_kernel.events.envelope import Envelope
from cityos_kernel.events.payloads import ConfigChangedV1
from cityos_kernel.events.topics import CONFIG_CHANGED
from cityos_support.config.live import LiveValue
from cityos_support.config.repository import ConfigEntry

logger = logging.getLogger(__name__)


def publish_change(bus: Bus, entry: ConfigEntry, *, source: str = "support") -> None:
    """Publish one committed change (blocks until the bus confirms it)."""
    payload = ConfigChangedV1(key=entry.key, version=entry.version, value=entry.value)
    envelope = CONFIG_CHANGED.envelope(payload, source=source)
    bus.publish([Record(CONFIG_CHANGED.name, entry.key, CONFIG_CHANGED.encode(envelope))])


def config_listener(
    values: Mapping[str, LiveValue[Any]], *, process: str, group: str | None = None
) -> ConsumerSpec:
    """A consumer that applies broadcast changes to this process's live values."""

    def apply_config_changes(batch: Sequence[Message]) -> None:
        for message in batch:
            change = cast(Envelope[ConfigChangedV1], message.envelope).payload
            live = values.get(change.key)
            if live is not None and live.apply(change.version, change.value):
                logger.info("applied %s version %d", change.key, change.version)

    return ConsumerSpec(
        name=f"{process}-config",
        group=group or f"{process}-config-{uuid.uuid4().hex[:12]}",
        topics=[CONFIG_CHANGED],
        handler=apply_config_changes,
        max_batch=100,
    )
