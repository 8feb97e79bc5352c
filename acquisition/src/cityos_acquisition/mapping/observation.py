"""The mapper's output: plain slotted records, turned into ``ObservationV1`` JSON on encoding.

They carry exactly the fields of ``ObservationV1``/``ObservedAttribute``. Constructing
pydantic models for every measure costs more than decoding it, so the hot path builds these
and :mod:`cityos_acquisition.ingest.encoding` writes the envelope; :meth:`to_payload`
gives the validated pydantic payload where one is needed (tests, contract checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cityos_kernel.events.payloads import AttributeKind, ObservationV1


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and this is built per message.
@dataclass(slots=True)
class Attribute:
    name: str
    value: Any
    observed_at: datetime
    kind: AttributeKind = "Property"
    unit_code: str | None = None
    dataset_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "value": self.value,
            "observed_at": self.observed_at,
            "unit_code": self.unit_code,
            "dataset_id": self.dataset_id,
        }


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and this is built per message.
@dataclass(slots=True)
class Observation:
    entity_id: str
    entity_type: str
    attributes: list[Attribute] = field(default_factory=list)
    device_id: str | None = None
    received_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity_id": self.entity_id,
            "entity_type": self.entity_type,
            "attributes": [attribute.as_dict() for attribute in self.attributes],
            "device_id": self.device_id,
            "received_at": self.received_at,
        }

    def to_payload(self) -> ObservationV1:
        """The validated topic payload (raises if the mapper ever produced a bad one)."""
        return ObservationV1.model_validate(self.as_dict())
