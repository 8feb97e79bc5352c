"""The device registry: config groups and devices, stored in PostgreSQL, cached in memory."""

from __future__ import annotations
