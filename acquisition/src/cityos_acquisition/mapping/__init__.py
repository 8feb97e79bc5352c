"""From decoded measures to NGSI-LD observations, by device and group configuration."""

from __future__ import annotations
