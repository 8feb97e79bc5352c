"""Observations → staging rows: the ingest's only per-observation work (pure: no SQL, no I/O).

Every measured attribute of an observation becomes ONE tab-separated COPY line for the
session's staging table (:data:`STAGING_COLUMNS`); the history rows, the current state, the
documents and the change events are all derived from those rows in SQL
(:mod:`cityos_knowledge.ingest.statements`). What Python still does per observation is what
SQL cannot do well: validate (GeoJSON, finite numbers, the tenant name), expand short names
with the vocabulary, and format one line. Everything that repeats — expanded and escaped
names, the text forms of an observedAt — is computed once and remembered.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from cityos_kernel.events.envelope import Envelope
from cityos_kernel.events.payloads import ObservationV1
from cityos_knowledge.entities.attributes import format_datetime
from cityos_knowledge.entities.geojson import validate_geometry
from cityos_knowledge.entities.limits import check_key_length
from cityos_knowledge.errors import BadRequestDataError
from cityos_knowledge.ingest.terms import expand_term
from cityos_knowledge.store.tables import DEFAULT_DATASET
from cityos_knowledge.store.tenants import validate_tenant

#: Columns of the staging table, in COPY order. ``seq`` is the message's place in the batch
#: (the later of two observations with the same observedAt wins the current state);
#: ``observed_text`` is the observedAt as the NGSI-LD document shows it; ``value`` is the
#: value's JSON text (also for numbers, so the current state keeps ``21`` and ``21.0`` apart).
STAGING_COLUMNS = (
    "seq", "entity_id", "name", "dataset_id", "observed_at", "observed_text", "kind",
    "unit_code", "value_number", "value", "geometry",
)  # fmt: skip

_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
#: A NUL escaped in JSON text (not an escaped backslash followed by "u0000").
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
#: Integers beyond this lose digits as a double: their value column keeps them exact.
_EXACT_INTEGER = 2**53
#: Remembered names are forgotten past this many (observations name a small vocabulary).
_NAME_CACHE_LIMIT = 10_000


def copy_field(text: str) -> str:
    """``text`` escaped for a COPY text-format field."""
    return text.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


@dataclass
class TenantRows:
    """One tenant's part of a batch: staging lines and what is known per entity."""

    lines: list[str] = field(default_factory=list)
    #: entity id → expanded types the observations carry (in order of appearance)
    types: dict[str, list[str]] = field(default_factory=dict)
    #: entity id → correlation id of its first observation in the batch
    correlation: dict[str, str] = field(default_factory=dict)
    #: first days (UTC) of the months the observations fall in (history partitions)
    months: set[date] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Moment:
    iso: str
    ngsi: str
    month: date
    #: the line's middle for a number of the default instance (datasetId to kind)
    default_number: str


class Stager:
    """Turns observation envelopes into staging lines, grouped by tenant.

    One instance per consumer; :meth:`start_batch` before each batch. Not thread-safe.
    """

    def __init__(self, vocabulary: str) -> None:
        self._vocabulary = vocabulary
        self._terms: dict[str, str] = {}
        self._fields: dict[str, str] = {}
        #: attribute name as observed → (expanded and length-checked, its COPY field)
        self._names: dict[str, tuple[str, str]] = {}
        self._tenants: dict[str | None, str] = {}
        self._moments: dict[tuple[Any, ...], _Moment] = {}
        self.tenants: dict[str, TenantRows] = {}

    def start_batch(self) -> None:
        self.tenants = {}
        self._moments = {}
        if len(self._terms) + len(self._fields) + len(self._names) > _NAME_CACHE_LIMIT:
            self._terms.clear()
            self._fields.clear()
            self._names.clear()

    def expand(self, term: str) -> str:
        """The IRI of a short name (remembered)."""
        expanded = self._terms.get(term)
        if expanded is None:
            expanded = self._terms[term] = expand_term(term, self._vocabulary)
        return expanded

    def _name(self, term: str) -> tuple[str, str]:
        """An attribute name's IRI and its COPY field (remembered once checked)."""
        name = check_key_length(self.expand(term), "attribute name")
        known = self._names[term] = (name, self._field(name))
        return known

    def _field(self, text: str) -> str:
        escaped = self._fields.get(text)
        if escaped is None:
            escaped = self._fields[text] = copy_field(_no_nul(text))
        return escaped

    def _moment(self, observed_at: datetime) -> _Moment:
        # Keyed on the fields, not the datetime: hashing an aware datetime asks its tzinfo
        # for the offset and builds two timedeltas (half a microsecond per attribute).
        key = (
            observed_at.year, observed_at.month, observed_at.day, observed_at.hour,
            observed_at.minute, observed_at.second, observed_at.microsecond, observed_at.tzinfo,
            observed_at.fold,
        )  # fmt: skip
        moment = self._moments.get(key)
        if moment is None:
            utc = observed_at.astimezone(UTC) if observed_at.tzinfo else observed_at
            utc = utc.replace(tzinfo=UTC)
            iso, ngsi = utc.isoformat(), format_datetime(utc)
            moment = self._moments[key] = _Moment(
                iso, ngsi, date(utc.year, utc.month, 1), f"\t@none\t{iso}\t{ngsi}\tProperty\t"
            )
        return moment

    def stage(self, envelope: Envelope[Any], seq: int) -> int:
        """Add the lines of one observation; return its observation count.

        Raises BadRequestData (nothing added) when the store cannot take it.
        """
        observation = envelope.payload
        if type(observation) is not ObservationV1 and not isinstance(observation, ObservationV1):
            raise TypeError(f"not an observation: {type(observation).__name__}")
        tenant = self._tenants.get(envelope.tenant)
        if tenant is None:
            tenant = validate_tenant(envelope.tenant)
            if len(self._tenants) < _NAME_CACHE_LIMIT:
                self._tenants[envelope.tenant] = tenant
        entity_id = check_key_length(observation.entity_id, "entity id")
        head = f"{seq}\t{copy_field(_no_nul(entity_id))}\t"
        lines = []
        months = []
        names = self._names
        fields = self._fields
        for measured in observation.attributes:
            moment = self._moment(measured.observed_at)
            months.append(moment.month)
            name, name_field = names.get(measured.name) or self._name(measured.name)
            value = measured.value
            kind = measured.kind
            kind_type = type(value)
            if (
                kind == "Property"
                and measured.dataset_id is None
                and (
                    (kind_type is float and math.isfinite(value))
                    or (kind_type is int and -_EXACT_INTEGER < value < _EXACT_INTEGER)
                )
            ):
                # The common case, spelled out: a number of the default instance.
                number = repr(value)
                unit = measured.unit_code
                lines.append(
                    f"{head}{name_field}{moment.default_number}"
                    f"{(fields.get(unit) or self._field(unit)) if unit else _NULL}\t"
                    f"{number}\t{number}\t\\N\n"
                )
            else:
                lines.append(head + self._other(measured, name, moment))
        entity_type = check_key_length(self.expand(observation.entity_type), "type")
        rows = self.tenants.get(tenant)
        if rows is None:
            rows = self.tenants[tenant] = TenantRows()
        rows.lines.extend(lines)
        rows.months.update(months)
        types = rows.types.get(entity_id)
        if types is None:
            rows.types[entity_id] = [entity_type]
            rows.correlation[entity_id] = envelope.correlation_id
        elif entity_type not in types:
            types.append(entity_type)
        return len(lines)

    def _other(self, measured: Any, name: str, moment: _Moment) -> str:
        """The line (after seq and entity) of any attribute but a plain default number."""
        kind, value = measured.kind, measured.value
        if value is None:
            raise BadRequestDataError(f"attribute {name}: the value must not be null")
        geometry = _NULL
        number = _NULL
        if kind == "GeoProperty":
            validate_geometry(value, f"attribute {name}.value")
            geometry = copy_field(orjson.dumps(value).decode())
        elif kind == "VocabProperty" and isinstance(value, str):
            value = self.expand(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequestDataError(f"attribute {name}: {value} is not a JSON number")
        if kind == "Property" and isinstance(value, int | float) and not isinstance(value, bool):
            number = repr(float(value))
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)  # exact, whatever its size (orjson stops at 64 bits)
        else:
            try:
                text = orjson.dumps(value).decode()
            except orjson.JSONEncodeError as exc:
                raise BadRequestDataError(f"attribute {name}: {exc}") from exc
        if _JSON_NUL.search(text):
            raise BadRequestDataError(f"attribute {name}: text must not contain NUL characters")
        dataset_id = _no_nul(measured.dataset_id or DEFAULT_DATASET)
        check_key_length(dataset_id, f"attribute {name}: datasetId")
        unit = measured.unit_code
        return (
            f"{self._field(name)}\t{copy_field(dataset_id)}\t{moment.iso}\t{moment.ngsi}\t"
            f"{kind}\t{self._field(unit) if unit else _NULL}\t{number}\t{copy_field(text)}\t"
            f"{geometry}\n"
        )


def _no_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL: refuse it here rather than fail the whole batch."""
    if "\x00" in text:
        raise BadRequestDataError(f"{text!r} contains a NUL character")
    return text
