"""Building the configured bus adapter from settings."""

from __future__ import annotations

from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.bus.port import Bus
from cityos_kernel.settings import PlatformSettings


def build_bus(settings: PlatformSettings) -> Bus:
    """The in-memory bus (``CITYOS_BUS=memory``) or the Kafka adapter (``kafka``)."""
    if settings.bus == "kafka":
        # Imported here so the all-in-one never loads the Kafka client.
        from cityos_kernel.bus.kafka import KafkaBus

        return KafkaBus(
            settings.kafka_bootstrap,
            partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
        )
    return MemoryBus(partitions=settings.kafka_partitions)
