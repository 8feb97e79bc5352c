"""The contract between a layer and the composition root (the ``cityos`` runtime).

A layer exposes a :class:`Layer`; the runtime calls :meth:`Layer.build` with a
:class:`LayerContext` and gets back :class:`LayerParts` — HTTP routers (each with its
own path prefix), bus consumers,
background services and readiness checks — which it mounts, starts and stops without
knowing what is inside. Database migrations are declared separately
(:meth:`Layer.migrations`) because ``cityos db upgrade`` runs them without starting
anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fastapi import APIRouter

from cityos_kernel.bus.consumer import ConsumerSpec
from cityos_kernel.bus.port import Bus
from cityos_kernel.settings import PlatformSettings


@dataclass(frozen=True)
class ReadinessCheck:
    """A named dependency check: returns a short detail, raises when not ready."""

    name: str
    check: Callable[[], str]


class BackgroundService(Protocol):
    """Something that runs beside the HTTP server (a relay, a poller, an MQTT client)."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class MigrationSpec:
    """One Alembic migration history, owned by one layer."""

    name: str
    script_location: Path


@dataclass
class LayerContext:
    """What the runtime hands to every layer it builds."""

    settings: PlatformSettings
    bus: Bus
    database_url: str | None
    mqtt_url: str | None


@dataclass
class LayerParts:
    """What a layer contributes to a running process."""

    #: Routers carry their own prefix (``APIRouter(prefix="/ngsi-ld/v1")``).
    routers: list[APIRouter] = field(default_factory=list)
    consumers: list[ConsumerSpec] = field(default_factory=list)
    services: list[BackgroundService] = field(default_factory=list)
    readiness: list[ReadinessCheck] = field(default_factory=list)


class Layer(Protocol):
    """A layer of the platform as the runtime sees it."""

    @property
    def name(self) -> str: ...

    def migrations(self) -> list[MigrationSpec]: ...

    def build(self, context: LayerContext) -> LayerParts: ...
