"""Fast encoding of observation envelopes on the ingestion hot path.

Building every envelope through pydantic (validate, dump, serialize) costs more than the
rest of the ingestion together. The observations built here come from our own mapper, so
this module writes the same JSON document directly with orjson; a test decodes its output
with the topic's schema and compares it with the pydantic encoding, so the two cannot
drift apart (ADR 0023).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson

from cityos_acquisition.mapping.observation import Observation
from cityos_kernel.bus.port import Record
from cityos_kernel.events.topics import OBSERVATIONS

_random = random.Random()  # noqa: S311 - message ids need uniqueness, not secrecy
_TYPE = OBSERVATIONS.event_type
_VERSION = OBSERVATIONS.schema_version


def fast_uuid4() -> str:
    """A random version-4 UUID string (message ids need uniqueness, not secrecy)."""
    bits = _random.getrandbits(128)
    bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def encode_observation(
    observation: Observation, *, tenant: str, source: str, correlation_id: str | None = None
) -> bytes:
    """The envelope of ``acquisition.observations.v1`` for ``observation``, as JSON bytes."""
    message_id = fast_uuid4()
    return orjson.dumps(
        {
            "id": message_id,
            "type": _TYPE,
            "schema_version": _VERSION,
            "time": datetime.now(UTC),
            "tenant": tenant,
            "correlation_id": correlation_id or message_id,
            "source": source,
            "payload": observation.as_dict(),
        }
    )


def observation_record(observation: Observation, *, tenant: str, source: str) -> Record:
    """A bus record of ``acquisition.observations.v1``, keyed by entity id."""
    value = encode_observation(observation, tenant=tenant, source=source)
    return Record(OBSERVATIONS.name, observation.entity_id, value)
