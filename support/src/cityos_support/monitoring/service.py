"""The monitoring loop: gather indicators, evaluate the rules in force, send messages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cityos_support.monitoring.indicators import Indicators
from cityos_support.monitoring.notifiers import Dispatcher
from cityos_support.monitoring.rules import WarningEvaluator, WarningMessage, WarningRules
from cityos_support.periodic import PeriodicService

logger = logging.getLogger(__name__)


class MonitoringService(PeriodicService):
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
        super().__init__(interval=interval)
        self.indicators = indicators
        self._rules = rules
        self._dispatcher = dispatcher
        self._clock = clock
        self.evaluator = WarningEvaluator()

    def run_once(self) -> list[WarningMessage]:
        """One round; returns the messages it produced (sent or queued for retry)."""
        messages = self.evaluator.evaluate(
            self._rules().rules, self.indicators.collect(), now=self._clock()
        )
        for message in messages:
            logger.warning("%s", message.subject)
        self._dispatcher.dispatch(messages)
        return messages
