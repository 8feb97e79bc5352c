"""Event envelopes, payload schemas and the topic catalogue."""

from __future__ import annotations

from cityos_kernel.events.envelope import DEFAULT_TENANT, Envelope, SchemaError
from cityos_kernel.events.topics import CATALOGUE, Topic

__all__ = ["CATALOGUE", "DEFAULT_TENANT", "Envelope", "SchemaError", "Topic"]
