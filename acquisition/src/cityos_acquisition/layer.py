"""How the acquisition layer plugs into a cityos process (see ``cityos_kernel.layer``).

It will contribute MQTT/HTTP/LoRaWAN transports, the provisioning API and device registry;
each arrives with its own issue and registers here, so the runtime never changes for it.
"""

from __future__ import annotations

from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec


class AcquisitionLayer:
    """The acquisition layer as the composition root sees it."""

    name = "acquisition"

    def migrations(self) -> list[MigrationSpec]:
        return []

    def build(self, context: LayerContext) -> LayerParts:
        return LayerParts()


def create() -> AcquisitionLayer:
    """Entry point used by the runtime."""
    return AcquisitionLayer()
