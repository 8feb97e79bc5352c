"""The monitoring loop: gather indicators, evaluate the rules in force, send messages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cityos_support.monitoring.indicators import Indicators
from cityos_support.monitoring.notifiers import Dispatcher
from cityos_support.monitoring.rules import WarningEvaluator, WarningMessage, WarningRules

logger = logging.getLogger(__name__)


class MonitoringService:
    """Evaluates the warning rules every ``interval`` seconds in its own thread."""

    name = "monitoring"

    def __init__(
        self,
        indicators: Indicators,
        rules: Callable[[], WarningRules],
        dispatcher: Dispatcher,
        *,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.indicators = indicators
        self._rules = rules
        self._dispatcher = dispatcher
        self._interval = interval
        self._clock = clock
        self.evaluator = WarningEvaluator()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[WarningMessage]:
        """One round; returns the messages it produced (sent or queued for retry)."""
        messages = self.evaluator.evaluate(
            self._rules().rules, self.indicators.collect(), now=self._clock()
        )
        for message in messages:
            logger.warning("%s", message.subject)
        self._dispatcher.dispatch(messages)
        return messages

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
                logger.exception("monitoring round failed")
