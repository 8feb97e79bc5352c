"""The layers the runtime knows how to assemble, in the order they are started."""

from __future__ import annotations

from collections.abc import Callable

import cityos_acquisition.layer
import cityos_interoperability.layer
import cityos_knowledge.layer
import cityos_support.layer
from cityos_kernel.layer import Layer

LAYER_FACTORIES: dict[str, Callable[[], Layer]] = {
    "support": cityos_support.layer.create,
    "knowledge": cityos_knowledge.layer.create,
    "acquisition": cityos_acquisition.layer.create,
    "interoperability": cityos_interoperability.layer.create,
}

LAYER_NAMES: tuple[str, ...] = tuple(LAYER_FACTORIES)


def load_layers(names: tuple[str, ...] = LAYER_NAMES) -> list[Layer]:
    """Instantiate the named layers (all by default)."""
    unknown = [name for name in names if name not in LAYER_FACTORIES]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)}; choose from {LAYER_NAMES}")
    return [LAYER_FACTORIES[name]() for name in names]
