"""The cityos interoperability layer."""

from __future__ import annotations
