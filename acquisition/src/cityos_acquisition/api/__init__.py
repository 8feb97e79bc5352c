"""HTTP entry points of the acquisition layer: provisioning (northbound) and southbound."""

from __future__ import annotations
