"""The cityos knowledge layer."""

from __future__ import annotations
