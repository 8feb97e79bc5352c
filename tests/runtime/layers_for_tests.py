"""A small layer that uses every part of the layer contract, for runtime tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, Depends

from cityos_kernel.bus.consumer import ConsumerSpec, Message
from cityos_kernel.events.topics import OBSERVATIONS
from cityos_kernel.layer import (
    LayerContext,
    LayerParts,
    MigrationSpec,
    ReadinessCheck,
)
from cityos_support.security import public, require


class RecordingService:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


class ExampleLayer:
    name = "example"

    def __init__(self, *, ready: bool = True) -> None:
        self.service = RecordingService()
        self.handled: list[str] = []
        self.ready = ready
        self.context: LayerContext | None = None

    def migrations(self) -> list[MigrationSpec]:
        return [MigrationSpec("example", Path(__file__).parent / "example_migrations")]

    def build(self, context: LayerContext) -> LayerParts:
        self.context = context
        router = APIRouter(prefix="/example")

        @router.get("/things", dependencies=[Depends(require("things:read"))])
        async def list_things() -> list[str]:
            """List the things."""
            return list(self.handled)

        @router.get("/open", dependencies=[Depends(public())])
        async def open_data() -> dict[str, str]:
            """Deliberately public."""
            return {"open": "yes"}

        def handle(batch: Sequence[Message]) -> None:
            self.handled.extend(m.envelope.payload.entity_id for m in batch)  # type: ignore[attr-defined]

        def check() -> str:
            if not self.ready:
                raise RuntimeError("example store offline")
            return "example store fine"

        return LayerParts(
            routers=[router],
            consumers=[ConsumerSpec("example", "example-group", [OBSERVATIONS], handle)],
            services=[self.service],
            readiness=[ReadinessCheck("example", check)],
        )
