"""The one error every codec raises."""

from __future__ import annotations

from cityos_kernel.errors import CityosError


class DecodeError(CityosError):
    """The input cannot be decoded; ``reason`` says why, for the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
