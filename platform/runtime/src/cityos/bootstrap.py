"""The composition root: builds a running platform from settings and a list of layers.

Nothing else in the code base wires adapters together. The runtime does not know what a
layer contains; it mounts the routers, runs the consumers and services, and asks the
readiness checks each layer hands back (:mod:`cityos_kernel.layer`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from cityos.readiness import bus_check, database_check, mqtt_check
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.bus.factory import build_bus
from cityos_kernel.bus.port import Bus
from cityos_kernel.events.topics import CATALOGUE
from cityos_kernel.layer import BackgroundService, Layer, LayerContext, LayerParts, ReadinessCheck
from cityos_kernel.settings import PlatformSettings
from cityos_support.security.dependencies import Authorizer
from cityos_support.security.modes import authorizer_for, security_parts

logger = logging.getLogger(__name__)


@dataclass
class Platform:
    """Everything one cityos process runs: bus, layers' parts and their lifecycles."""

    settings: PlatformSettings
    bus: Bus
    layers: list[Layer]
    parts: dict[str, LayerParts]
    authorizer: Authorizer
    database_url: str | None
    mqtt_url: str | None
    runners: list[ConsumerRunner] = field(default_factory=list)
    _started_services: list[BackgroundService] = field(default_factory=list)

    @property
    def readiness_checks(self) -> list[ReadinessCheck]:
        checks: list[ReadinessCheck] = []
        if self.database_url:
            checks.append(database_check(self.database_url))
        checks.append(bus_check(self.bus))
        if self.mqtt_url:
            checks.append(mqtt_check(self.mqtt_url))
        for parts in self.parts.values():
            checks.extend(parts.readiness)
        return checks

    def start(self) -> None:
        """Create topics, start background services, then consumers."""
        self.bus.ensure_topics(list(CATALOGUE))
        for parts in self.parts.values():
            for service in parts.services:
                logger.info("starting %s", service.name)
                service.start()
                self._started_services.append(service)
            for spec in parts.consumers:
                runner = ConsumerRunner(self.bus, spec)
                runner.start()
                self.runners.append(runner)
                logger.info("consumer %s joined group %s", spec.name, spec.group)

    def stop(self) -> None:
        """Consumers finish and commit their batch, services stop, the producer flushes."""
        for runner in reversed(self.runners):
            runner.stop()
        self.runners.clear()
        for service in reversed(self._started_services):
            try:
                service.stop()
            except Exception:
                logger.exception("stopping %s failed", service.name)
        self._started_services.clear()
        self.bus.close()


def build_platform(
    settings: PlatformSettings,
    layers: Sequence[Layer],
    *,
    database_url: str | None = None,
    mqtt_url: str | None = None,
    bus: Bus | None = None,
) -> Platform:
    """Assemble a platform; ``database_url``/``mqtt_url`` override the settings (embedded)."""
    bus = bus or build_bus(settings)
    database_url = database_url or settings.database_dsn()
    mqtt_url = mqtt_url or settings.mqtt_url
    context = LayerContext(settings=settings, bus=bus, database_url=database_url, mqtt_url=mqtt_url)
    parts = {layer.name: layer.build(context) for layer in layers}
    authorizer = authorizer_for(settings, bus=bus, database_url=database_url)
    # Every process applies a policy change as soon as it is broadcast (its own listener).
    parts["security"] = security_parts(authorizer)
    return Platform(
        settings=settings,
        bus=bus,
        layers=list(layers),
        parts=parts,
        authorizer=authorizer,
        database_url=database_url,
        mqtt_url=mqtt_url,
    )
