"""The cityos acquisition layer."""

from __future__ import annotations
