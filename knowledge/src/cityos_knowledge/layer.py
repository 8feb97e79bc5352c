"""How the knowledge layer plugs into a cityos process (see ``cityos_kernel.layer``).

It will contribute the context and temporal stores, the observations consumer and the
service facade;
each arrives with its own issue and registers here, so the runtime never changes for it.
"""

from __future__ import annotations

from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec


class KnowledgeLayer:
    """The knowledge layer as the composition root sees it."""

    name = "knowledge"

    def migrations(self) -> list[MigrationSpec]:
        return []

    def build(self, context: LayerContext) -> LayerParts:
        return LayerParts()


def create() -> KnowledgeLayer:
    """Entry point used by the runtime."""
    return KnowledgeLayer()
