"""How the acquisition layer plugs into a cityos process (see ``cityos_kernel.layer``).

It contributes the IoT-Agent-compatible provisioning API and the HTTP southbound under
``/iot``, the MQTT/LoRaWAN ingestion service, the command consumer and the device health
monitor. It talks to the other layers only through topics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cityos_acquisition.api.health import health_router
from cityos_acquisition.api.provisioning import provisioning_router
from cityos_acquisition.api.southbound import southbound_router
from cityos_acquisition.commands.consumer import CommandDispatcher, command_consumer
from cityos_acquisition.commands.pending import (
    PendingCommands,
    PendingCommandStore,
    PostgresPendingCommands,
)
from cityos_acquisition.health.monitor import HealthMonitor
from cityos_acquisition.ingest.pipeline import IngestPipeline
from cityos_acquisition.registry.outbox import OutboxRelay
from cityos_acquisition.registry.postgres import PostgresRegistryStore
from cityos_acquisition.registry.service import Registry, cache_invalidation_consumer
from cityos_acquisition.registry.store import MemoryRegistryStore, RegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_acquisition.transports.mqtt import MqttIngestService
from cityos_acquisition.transports.mqtt_topics import (
    CHIRPSTACK_SUBSCRIPTIONS,
    IOT_AGENT_SUBSCRIPTIONS,
    THINGS_STACK_SUBSCRIPTIONS,
)
from cityos_kernel.bus.port import Bus
from cityos_kernel.database import create_pooled_engine
from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec, ReadinessCheck

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "registry" / "migrations"


@dataclass
class AcquisitionParts:
    """The layer's wired objects, kept so tests and the benchmark can reach them."""

    registry: Registry
    pipeline: IngestPipeline
    pending: PendingCommandStore
    parts: LayerParts
    health: HealthMonitor
    commands: CommandDispatcher
    mqtt: MqttIngestService | None = None


def build_parts(
    bus: Bus,
    store: RegistryStore,
    settings: AcquisitionSettings,
    mqtt_url: str | None,
    *,
    pending: PendingCommandStore | None = None,
) -> AcquisitionParts:
    """Wire the layer from its adapters (the registry store, the pending commands of
    polling devices and the bus); without ``pending`` those commands live in memory."""
    registry = Registry(store, bus, cache_ttl=settings.registry_cache_ttl)
    health = HealthMonitor(registry, bus, check_interval=settings.health_check_interval)
    pipeline = IngestPipeline(registry, listeners=[health.record])
    registry.add_listener(health.on_device_event)
    pending = pending or PendingCommands()
    parts = LayerParts(
        routers=[
            provisioning_router(registry),
            southbound_router(pipeline, bus, pending),
            health_router(health),
        ],
        # Relays device events a write could not publish at once (bus down, crash).
        services=[health, OutboxRelay(store, bus)],
        readiness=[ReadinessCheck("acquisition-registry", store.check)],
    )
    mqtt: MqttIngestService | None = None
    if mqtt_url:
        mqtt = MqttIngestService(
            mqtt_url,
            pipeline=pipeline,
            bus=bus,
            topics=subscriptions(settings),
            client_id=settings.mqtt_client_id,
            shared_group=settings.mqtt_shared_group,
            max_inflight=settings.mqtt_max_inflight,
            batch_max=settings.batch_max,
            batch_wait=settings.batch_wait_ms / 1000,
            protocol=settings.mqtt_protocol,
            gc_threshold=settings.gc_threshold,
        )
        parts.services.append(mqtt)
        parts.readiness.append(ReadinessCheck("acquisition-mqtt", mqtt.check))
    dispatcher = CommandDispatcher(registry, bus, pending, mqtt.send if mqtt else None)
    parts.consumers.append(command_consumer(dispatcher))
    parts.consumers.append(cache_invalidation_consumer(registry, settings.mqtt_client_id))
    return AcquisitionParts(registry, pipeline, pending, parts, health, dispatcher, mqtt)


def subscriptions(settings: AcquisitionSettings) -> list[str]:
    """The MQTT topics to subscribe to, by which integrations are enabled."""
    topics = list(IOT_AGENT_SUBSCRIPTIONS)
    if settings.chirpstack:
        topics += CHIRPSTACK_SUBSCRIPTIONS
    if settings.things_stack:
        topics += THINGS_STACK_SUBSCRIPTIONS
    return topics


class AcquisitionLayer:
    """The acquisition layer as the composition root sees it."""

    name = "acquisition"

    def __init__(self, settings: AcquisitionSettings | None = None) -> None:
        self._settings = settings
        self.wired: AcquisitionParts | None = None

    def migrations(self) -> list[MigrationSpec]:
        return [MigrationSpec("acquisition", MIGRATIONS)]

    def build(self, context: LayerContext) -> LayerParts:
        settings = self._settings or AcquisitionSettings()
        store: RegistryStore
        pending: PendingCommandStore | None = None
        if context.database_url:
            engine = create_pooled_engine(context.database_url)
            store = PostgresRegistryStore(engine)
            pending = PostgresPendingCommands(engine)
        else:
            logger.warning("no database configured: the device registry lives in memory only")
            store = MemoryRegistryStore()
        self.wired = build_parts(context.bus, store, settings, context.mqtt_url, pending=pending)
        return self.wired.parts


def create() -> AcquisitionLayer:
    """Entry point used by the runtime."""
    return AcquisitionLayer()
