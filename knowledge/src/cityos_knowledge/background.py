"""The thread plumbing the layer's background services share (relay, maintenance)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class ThreadService(ABC):
    """A ``BackgroundService`` running :meth:`_run` in a daemon thread until stopped.

    ``_run`` must return soon after ``self._stop`` is set (wait on it, not ``time.sleep``).
    """

    name = "knowledge-service"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._stopping()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _stopping(self) -> None:
        """Hook: wake the thread if it waits on something other than ``self._stop``."""
        return None

    @abstractmethod
    def _run(self) -> None: ...
