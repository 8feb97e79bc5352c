"""The configuration keys the platform knows, with their models and defaults.

A known key's value is validated before it is stored (a bad policy is refused with 422,
not discovered by the next request); other keys hold any JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cityos_support.monitoring.rules import DEFAULT_WARNING_RULES, WARNING_RULES_KEY, WarningRules
from cityos_support.security.policy import DEFAULT_POLICY, POLICY_KEY, PolicyDocument


class RetentionSettings(BaseModel):
    """How long the platform keeps history and audit records.

    ``history_days`` unset (the default) keeps the whole history: a city never loses data
    unless someone chose a period. The knowledge layer applies it live (its store
    maintenance drops whole monthly partitions, or sets the TimescaleDB retention policy).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    history_days: int | None = Field(default=None, ge=1)
    audit_days: int = Field(default=3650, ge=365)
    dead_letter_days: int = Field(default=30, ge=1)


class PublicationSettings(BaseModel):
    """What is published as open data, and how it is anonymized."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    published_types: list[str] = Field(default_factory=list)
    schedule: str = Field(default="@daily", description="cron expression or @daily/@hourly")
    anonymization: dict[str, Any] = Field(
        default_factory=dict, description="see cityos_support.security.anonymize"
    )


@dataclass(frozen=True)
class KnownKey:
    key: str
    model: type[BaseModel]
    default: BaseModel
    description: str


KNOWN_KEYS: dict[str, KnownKey] = {
    known.key: known
    for known in (
        KnownKey(POLICY_KEY, PolicyDocument, DEFAULT_POLICY, "authorization policies by role"),
        KnownKey(WARNING_RULES_KEY, WarningRules, DEFAULT_WARNING_RULES, "OA&M warning rules"),
        KnownKey("retention", RetentionSettings, RetentionSettings(), "retention periods"),
        KnownKey(
            "publication", PublicationSettings, PublicationSettings(), "open-data publication"
        ),
    )
}


def validate_value(key: str, value: Any) -> Any:
    """The value to store: known keys are validated (pydantic ValidationError otherwise)."""
    known = KNOWN_KEYS.get(key)
    if known is None:
        return value
    return known.model.model_validate(value).model_dump(mode="json")
