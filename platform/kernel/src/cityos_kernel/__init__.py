"""The cityos platform kernel: what every layer shares and nothing layer-specific."""

from __future__ import annotations

__version__ = "0.1.0"
