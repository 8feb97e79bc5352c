"""The cityos acquisition layer: devices in, NGSI-LD observations out (through topics)."""

from __future__ import annotations

__version__ = "0.1.0"
