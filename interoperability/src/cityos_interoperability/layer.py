"""How the interoperability layer plugs into a cityos process (see ``cityos_kernel.layer``).

It will contribute the NGSI-LD API, notifications and open-data publication;
each arrives with its own issue and registers here, so the runtime never changes for it.
"""

from __future__ import annotations

from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec


class InteroperabilityLayer:
    """The interoperability layer as the composition root sees it."""

    name = "interoperability"

    def migrations(self) -> list[MigrationSpec]:
        return []

    def build(self, context: LayerContext) -> LayerParts:
        return LayerParts()


def create() -> InteroperabilityLayer:
    """Entry point used by the runtime."""
    return InteroperabilityLayer()
