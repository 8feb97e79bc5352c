"""The envelope every bus message travels in, and its JSON encoding (orjson)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

P = TypeVar("P", bound=BaseModel)

DEFAULT_TENANT = "urn:ngsi-ld:tenant:default"


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[P]):
    """A versioned, self-describing event: who sent what, for which tenant, when."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = Field(ge=1)
    time: datetime = Field(default_factory=_now)
    tenant: str = DEFAULT_TENANT
    correlation_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    payload: P


class SchemaError(ValueError):
    """A message that does not match its topic's schema; carries a human-readable reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_envelope(envelope: Envelope[P]) -> bytes:
    """Serialize an envelope to JSON bytes."""
    return orjson.dumps(envelope.model_dump(mode="json"))


def decode_envelope(data: bytes, model: type[Envelope[P]]) -> Envelope[P]:
    """Parse and validate bytes against an envelope model, or raise :class:`SchemaError`.

    pydantic parses the JSON itself (``model_validate_json``): about a third cheaper than
    ``orjson.loads`` followed by ``model_validate``, and every consumer pays it per record.
    """
    try:
        # What ``model.model_validate_json`` does, without its wrapper's per-call overhead.
        envelope: Envelope[P] = model.__pydantic_validator__.validate_json(data)
        return envelope
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise SchemaError(f"not JSON: {errors[0]['msg']}") from exc
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in errors[:5]
        )
        raise SchemaError(f"does not match {model.__name__}: {problems}") from exc
