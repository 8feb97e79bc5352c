"""A background service that runs one task every few seconds in its own thread."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)


class PeriodicService:
    """Calls :meth:`run_once` every ``interval`` seconds until stopped; errors are logged
    and the next round tries again (a subclass sets ``name``)."""

    name = "periodic"

    def __init__(self, *, interval: float) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        raise NotImplementedError

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
                self.run_once()
            except Exception:
                logger.exception("%s: round failed; will retry", self.name)
