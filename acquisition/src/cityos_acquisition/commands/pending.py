"""Commands waiting for an HTTP device to poll them (``getCmd=1``)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PendingCommand:
    command_id: str
    command: str
    params: Any
    entity_id: str


class PendingCommands:
    """Per-device queues of commands not yet delivered; in memory (lost on restart)."""

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], list[PendingCommand]] = defaultdict(list)
        self._lock = threading.Lock()

    def add(self, tenant: str, device_id: str, command: PendingCommand) -> None:
        with self._lock:
            self._queues[(tenant, device_id)].append(command)

    def take(self, tenant: str, device_id: str) -> list[PendingCommand]:
        with self._lock:
            return self._queues.pop((tenant, device_id), [])
