"""How the support layer plugs into a cityos process (see ``cityos_kernel.layer``).

It will contribute security, audit, monitoring and the configuration repository;
each arrives with its own issue and registers here, so the runtime never changes for it.
"""

from __future__ import annotations

from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec


class SupportLayer:
    """The support layer as the composition root sees it."""

    name = "support"

    def migrations(self) -> list[MigrationSpec]:
        return []

    def build(self, context: LayerContext) -> LayerParts:
        return LayerParts()


def create() -> SupportLayer:
    """Entry point used by the runtime."""
    return SupportLayer()
