"""Fast encoding of observation envelopes on the ingestion hot path.

Building every envelope through pydantic (validate, dump, serialize) costs more than the
rest of the ingestion together. The observations built here come from our own mapper, so
this module writes the same JSON document directly with orjson (the kernel's
``Topic.encode_unchecked``); a test decodes its output with the topic's schema and compares
it with the pydantic encoding, so the two cannot drift apart (ADR 0023).
"""

from __future__ import annotations

from cityos_acquisition.mapping.observation import Observation
from cityos_kernel.bus.port import Record
from cityos_kernel.events.topics import OBSERVATIONS


def encode_observation(
    observation: Observation, *, tenant: str, source: str, correlation_id: str | None = None
) -> bytes:
    """The envelope of ``acquisition.observations.v1`` for ``observation``, as JSON bytes."""
    return OBSERVATIONS.encode_unchecked(
        observation.as_dict(), tenant=tenant, source=source, correlation_id=correlation_id
    )


def observation_record(observation: Observation, *, tenant: str, source: str) -> Record:
    """A bus record of ``acquisition.observations.v1``, keyed by entity id."""
    value = encode_observation(observation, tenant=tenant, source=source)
    return Record(OBSERVATIONS.name, observation.entity_id, value)
