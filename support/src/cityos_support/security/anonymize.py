"""Anonymization of entities before publication (open data, exports).

A policy names attributes and what to do with each:

- ``drop``: the attribute disappears;
- ``hash``: its value becomes an HMAC-SHA256 under a key the platform keeps (keyed, so
  nobody can confirm a guessed value by hashing it, and equal values still join);
- ``generalize``: coordinates are rounded (``decimals``: 3 ≈ 100 m), times are cut to the
  ``bucket`` (hour, day, month), numbers are rounded down to a ``step``.

Works on NGSI-LD normalized attributes (``{"type": "Property", "value": …}``), including
``observedAt``, and on plain values (keyValues). The input is never modified.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TimeBucket = Literal["hour", "day", "month"]


class AttributeTreatment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["drop", "hash", "generalize"]
    decimals: int | None = Field(default=None, ge=0, le=8, description="coordinate rounding")
    bucket: TimeBucket | None = None
    step: float | None = Field(default=None, gt=0, description="numeric rounding step")

    @model_validator(mode="after")
    def _generalization_says_how(self) -> AttributeTreatment:
        if self.action == "generalize" and (
            self.decimals is None and self.bucket is None and self.step is None
        ):
            raise ValueError("generalize needs decimals, bucket or step")
        return self


class AnonymizationPolicy(BaseModel):
    """Attribute name → treatment (names as they appear in the published entity)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attributes: dict[str, AttributeTreatment] = Field(default_factory=dict)


def keyed_hash(value: Any, key: bytes) -> str:
    """HMAC-SHA256 of a value's canonical text form."""
    text = value if isinstance(value, str) else repr(value)
    return "hmac-sha256:" + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def round_coordinates(geometry: Any, decimals: int) -> Any:
    """A GeoJSON geometry (or bare coordinate list) with every coordinate rounded."""
    if isinstance(geometry, dict):
        rounded = dict(geometry)
        if "coordinates" in rounded:
            rounded["coordinates"] = round_coordinates(rounded["coordinates"], decimals)
        if "geometries" in rounded:
            rounded["geometries"] = [round_coordinates(g, decimals) for g in rounded["geometries"]]
        return rounded
    if isinstance(geometry, list):
        return [round_coordinates(part, decimals) for part in geometry]
    if isinstance(geometry, (int, float)):
        return round(float(geometry), decimals)
    return geometry


def bucket_time(value: str, bucket: TimeBucket) -> str:
    """An ISO 8601 time cut down to the start of its hour, day or month."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if bucket == "hour":
        moment = moment.replace(minute=0, second=0, microsecond=0)
    elif bucket == "day":
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        moment = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    text = moment.isoformat()
    return text.replace("+00:00", "Z") if value.endswith("Z") else text


def generalize_number(value: float, step: float) -> float:
    return math.floor(value / step) * step


def _generalize(value: Any, treatment: AttributeTreatment) -> Any:
    if treatment.decimals is not None and isinstance(value, (dict, list)):
        return round_coordinates(value, treatment.decimals)
    if treatment.bucket is not None and isinstance(value, str):
        return bucket_time(value, treatment.bucket)
    if (
        treatment.step is not None
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return generalize_number(float(value), treatment.step)
    return value


def _treat_value(value: Any, treatment: AttributeTreatment, key: bytes) -> Any:
    if treatment.action == "hash":
        return keyed_hash(value, key)
    return _generalize(value, treatment)


def anonymize(entity: dict[str, Any], policy: AnonymizationPolicy, *, key: bytes) -> dict[str, Any]:
    """A copy of ``entity`` with the policy applied to each named attribute."""
    result = copy.deepcopy(entity)
    for name, treatment in policy.attributes.items():
        if name not in result:
            continue
        if treatment.action == "drop":
            del result[name]
            continue
        instances = result[name] if isinstance(result[name], list) else [result[name]]
        treated = []
        for instance in instances:
            if (
                isinstance(instance, dict)
                and "type" in instance
                and ("value" in instance or "object" in instance)
            ):
                member = "value" if "value" in instance else "object"
                instance = {**instance, member: _treat_value(instance[member], treatment, key)}
                if treatment.bucket is not None and "observedAt" in instance:
                    instance["observedAt"] = bucket_time(instance["observedAt"], treatment.bucket)
            else:
                instance = _treat_value(instance, treatment, key)
            treated.append(instance)
        result[name] = treated if isinstance(result[name], list) else treated[0]
    return result
