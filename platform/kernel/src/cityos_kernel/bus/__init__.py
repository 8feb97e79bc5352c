"""The bus port and its adapters.

The Kafka adapter is loaded on first use of its names: importing kafka-python takes about
0.4 s, which the all-in-one (in-memory bus) should not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cityos_kernel.bus.memory import MemoryBus, MemorySubscription
from cityos_kernel.bus.port import (
    Bus,
    BusError,
    CommitFailedError,
    Delivery,
    PublishError,
    Record,
    Subscription,
)

if TYPE_CHECKING:
    from cityos_kernel.bus.kafka import (
        ConsumerTuning,
        KafkaBus,
        KafkaPublishError,
        KafkaSubscription,
        ProducerTuning,
    )

_KAFKA_NAMES = frozenset(
    {"ConsumerTuning", "KafkaBus", "KafkaPublishError", "KafkaSubscription", "ProducerTuning"}
)

__all__ = [
    "Bus",
    "BusError",
    "CommitFailedError",
    "ConsumerTuning",
    "Delivery",
    "KafkaBus",
    "KafkaPublishError",
    "KafkaSubscription",
    "MemoryBus",
    "MemorySubscription",
    "ProducerTuning",
    "PublishError",
    "Record",
    "Subscription",
]


def __getattr__(name: str) -> Any:
    if name in _KAFKA_NAMES:
        return getattr(importlib.import_module("cityos_kernel.bus.kafka"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
