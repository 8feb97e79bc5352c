"""OA&M warning rules and their evaluation, without I/O.

A rule watches one indicator (``consumer_lag``, ``deadletter_rate``,
``device_silence_seconds``, ``notification_failures``, ``disk_used_ratio`` …) and fires when
a sample is above (or below) its threshold. Each indicator sample has labels (which consumer
group, which device, which filesystem); a rule fires once per label set. The evaluator keeps
what is firing, so it notifies on the transition only — once when a warning starts
(de-duplication), optionally again every ``repeat_after_seconds`` while it lasts, and once
when it recovers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WARNING_RULES_KEY = "monitoring.warning_rules"

Labels = tuple[tuple[str, str], ...]


class WarningRule(BaseModel):
    """Fire when ``indicator`` is above ``above`` (or below ``below``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    indicator: str = Field(min_length=1)
    above: float | None = None
    below: float | None = None
    severity: Literal["warning", "critical"] = "warning"
    notify: list[str] = Field(
        default_factory=list,
        description="mailto:ops@city.example or an http(s) webhook URL, per target",
    )
    repeat_after_seconds: float | None = Field(default=None, gt=0)
    description: str = ""

    @model_validator(mode="after")
    def _one_threshold(self) -> WarningRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("a rule needs exactly one of above / below")
        return self

    def breached(self, value: float) -> bool:
        if self.above is not None:
            return value > self.above
        assert self.below is not None
        return value < self.below


class WarningRules(BaseModel):
    """The warning rules in force (configuration key ``monitoring.warning_rules``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[WarningRule] = Field(default_factory=list)


DEFAULT_WARNING_RULES = WarningRules(
    rules=[
        WarningRule(name="consumer-lag", indicator="consumer_lag", above=10_000),
        WarningRule(name="dead-letters", indicator="deadletter_rate", above=10),
        WarningRule(name="device-silent", indicator="device_silence_seconds", above=3600),
        WarningRule(name="notifications-failing", indicator="notification_failures", above=5),
        WarningRule(name="disk-full", indicator="disk_used_ratio", above=0.9, severity="critical"),
    ]
)


@dataclass(frozen=True)
class Sample:
    """One value of one indicator, with its labels."""

    indicator: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def label_key(self) -> Labels:
        return tuple(sorted(self.labels.items()))


@dataclass(frozen=True)
class WarningMessage:
    """A notification to send: a warning started, continues, or recovered."""

    state: Literal["firing", "repeat", "resolved"]
    rule: WarningRule
    labels: Labels
    value: float | None
    since: float
    at: float

    @property
    def subject(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.labels) or "platform"
        word = {"firing": "WARNING", "repeat": "STILL", "resolved": "RECOVERED"}[self.state]
        return f"[cityos] {word} {self.rule.severity} {self.rule.name} ({where})"

    def text(self) -> str:
        threshold = (
            f"above {self.rule.above}"
            if self.rule.above is not None
            else f"below {self.rule.below}"
        )
        lines = [
            self.subject,
            "",
            f"indicator: {self.rule.indicator} (fires when {threshold})",
            f"value: {self.value}" if self.value is not None else "value: no longer reported",
        ]
        if self.rule.description:
            lines.append(self.rule.description)
        return "\n".join(lines)

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "rule": self.rule.name,
            "severity": self.rule.severity,
            "indicator": self.rule.indicator,
            "labels": dict(self.labels),
            "value": self.value,
            "since": self.since,
            "at": self.at,
            "summary": self.subject,
        }


@dataclass
class _Firing:
    since: float
    last_sent: float


class WarningEvaluator:
    """Compares samples to rules and remembers what is firing."""

    def __init__(self) -> None:
        self._firing: dict[tuple[str, Labels], _Firing] = {}

    @property
    def firing(self) -> set[tuple[str, Labels]]:
        return set(self._firing)

    def evaluate(
        self, rules: Iterable[WarningRule], samples: Iterable[Sample], *, now: float
    ) -> list[WarningMessage]:
        """The messages this round produces (nothing when nothing changed)."""
        rules = list(rules)
        by_indicator: dict[str, list[Sample]] = {}
        for sample in samples:
            by_indicator.setdefault(sample.indicator, []).append(sample)
        messages: list[WarningMessage] = []
        active: set[tuple[str, Labels]] = set()
        for rule in rules:
            for sample in by_indicator.get(rule.indicator, []):
                key = (rule.name, sample.label_key)
                if not rule.breached(sample.value):
                    continue
                active.add(key)
                firing = self._firing.get(key)
                if firing is None:
                    self._firing[key] = _Firing(since=now, last_sent=now)
                    messages.append(
                        WarningMessage("firing", rule, sample.label_key, sample.value, now, now)
                    )
                elif (
                    rule.repeat_after_seconds is not None
                    and now - firing.last_sent >= rule.repeat_after_seconds
                ):
                    firing.last_sent = now
                    messages.append(
                        WarningMessage(
                            "repeat", rule, sample.label_key, sample.value, firing.since, now
                        )
                    )
        rules_by_name = {rule.name: rule for rule in rules}
        for key in list(self._firing):
            if key in active:
                continue
            firing = self._firing.pop(key)
            rule_or_none = rules_by_name.get(key[0])
            if rule_or_none is None:
                continue  # the rule was removed: nobody asked to hear about it any more
            value = next(
                (
                    s.value
                    for s in by_indicator.get(rule_or_none.indicator, [])
                    if s.label_key == key[1]
                ),
                None,
            )
            messages.append(
                WarningMessage("resolved", rule_or_none, key[1], value, firing.since, now)
            )
        return messages
