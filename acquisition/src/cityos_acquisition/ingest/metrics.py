"""Prometheus metrics of the acquisition layer (served on the process's ``/metrics``)."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "cityos_acquisition_messages_total",
    "Device messages received, by transport and outcome (accepted or rejected)",
    ["transport", "outcome"],
)
DEAD_LETTERS = Counter(
    "cityos_acquisition_dead_letters_total",
    "Rejected device inputs sent to acquisition.deadletter.v1, by transport and reason kind",
    ["transport", "reason"],
)
OBSERVATIONS = Counter(
    "cityos_acquisition_observations_total",
    "Observations published to acquisition.observations.v1",
    ["transport"],
)
BATCH_SECONDS = Histogram(
    "cityos_acquisition_batch_seconds",
    "Time from taking a batch of device messages to the bus confirming it",
    ["transport"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PUBLISH_FAILURES = Counter(
    "cityos_acquisition_publish_failures_total",
    "Batches the bus did not confirm (their messages stay unacknowledged and come again)",
    ["transport"],
)


@functools.lru_cache(maxsize=256)
def messages(transport: str, outcome: str) -> Any:
    """The labelled counter child (looked up once: ``labels()`` costs a lock per call)."""
    return MESSAGES.labels(transport, outcome)


@functools.lru_cache(maxsize=256)
def observations(transport: str) -> Any:
    return OBSERVATIONS.labels(transport)
