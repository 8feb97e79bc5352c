"""NGSI-LD attributes ↔ store rows (pure: no SQL, no I/O).

An attribute arrives as expanded NGSI-LD normalized JSON (``{"type": "Property", "value":
21.5, "observedAt": "…", "unitCode": "CEL", "<sub-attribute IRI>": {…}}``). It is stored as
one current-state row (:class:`AttributeRow`, table ``attributes``) and, each time it
changes, as one history row (:class:`InstanceRow`, table ``attribute_instances``). The
columns are described in :mod:`cityos_knowledge.store.tables`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cityos_knowledge.entities.geojson import validate_geometry
from cityos_knowledge.entities.limits import check_key_length
from cityos_knowledge.errors import BadRequestDataError
from cityos_knowledge.store.tables import DEFAULT_DATASET

#: Attribute type → the member that holds its value.
MAIN_MEMBER: dict[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}

#: Members the store sets itself; what a client sends for them is ignored.
SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})

#: Members kept in their own history columns, not in ``extras``.
_INSTANCE_COLUMNS = frozenset({"type", "observedAt", "unitCode", "datasetId"})

INSTANCE_URN = "urn:ngsi-ld:attribute:instance:"


def parse_datetime(text: Any, where: str) -> datetime:
    """An ISO 8601 date-time (``Z`` or offset; naive means UTC), or BadRequestData."""
    if not isinstance(text, str):
        raise BadRequestDataError(f"{where} must be an ISO 8601 date-time string")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequestDataError(f"{where} is not an ISO 8601 date-time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_datetime(moment: datetime) -> str:
    """NGSI-LD's date-time form: UTC with a ``Z`` and milliseconds kept when present."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("@value"), str):
        return str(value["@value"])
    return None


@dataclass(frozen=True, slots=True)
class AttributeRow:
    """The current value of one attribute instance (entity + name + datasetId)."""

    name: str
    dataset_id: str
    kind: str
    value: Any
    value_number: float | None
    value_text: str | None
    geometry: str | None
    observed_at: datetime | None
    unit_code: str | None
    body: dict[str, Any]

    def columns(self) -> dict[str, Any]:
        """Values for the ``attributes`` columns other than entity_id and the timestamps."""
        return {
            "name": self.name,
            "dataset_id": self.dataset_id,
            "kind": self.kind,
            "value": self.value,
            "value_number": self.value_number,
            "value_text": self.value_text,
            "geometry": self.geometry,
            "observed_at": self.observed_at,
            "unit_code": self.unit_code,
            "body": self.body,
        }


def attribute_row(
    name: str, attribute: Mapping[str, Any], *, observed_at: datetime | None = None
) -> AttributeRow:
    """Validate one expanded attribute and turn it into its row (BadRequestData if invalid).

    ``observed_at``, when the caller already holds the parsed ``observedAt``, spares parsing
    it again (the ingest formats it from a datetime).
    """
    if not name:
        raise BadRequestDataError("an attribute name must not be empty")
    check_key_length(name, "attribute name")
    where = f"attribute {name}"
    if not isinstance(attribute, Mapping):
        raise BadRequestDataError(f"{where} must be a JSON object")
    kind = attribute.get("type")
    if kind not in MAIN_MEMBER:
        raise BadRequestDataError(
            f"{where}: type must be one of {', '.join(MAIN_MEMBER)}, not {kind!r}"
        )
    member = MAIN_MEMBER[kind]
    if member not in attribute:
        raise BadRequestDataError(f"{where}: a {kind} needs a {member!r} member")
    value = attribute[member]
    if value is None:
        raise BadRequestDataError(f"{where}: {member} must not be null")
    geometry = None
    if kind == "GeoProperty":
        validate_geometry(value, f"{where}.value")
        geometry = orjson.dumps(value).decode()
    if observed_at is None and "observedAt" in attribute:
        observed_at = parse_datetime(attribute["observedAt"], f"{where}.observedAt")
    dataset_id = attribute.get("datasetId", DEFAULT_DATASET)
    if not isinstance(dataset_id, str) or not dataset_id:
        raise BadRequestDataError(f"{where}: datasetId must be a non-empty URI string")
    check_key_length(dataset_id, f"{where}: datasetId")
    unit_code = attribute.get("unitCode")
    if unit_code is not None and not isinstance(unit_code, str):
        raise BadRequestDataError(f"{where}: unitCode must be a string")
    body = {key: item for key, item in attribute.items() if key not in SYSTEM_MEMBERS}
    if dataset_id == DEFAULT_DATASET:
        body.pop("datasetId", None)
    number = _number(value) if kind == "Property" else None
    return AttributeRow(
        name=name,
        dataset_id=dataset_id,
        kind=kind,
        value=value,
        value_number=number,
        value_text=_text(value) if kind != "GeoProperty" else None,
        geometry=geometry,
        observed_at=observed_at,
        unit_code=unit_code or None,
        body=body,
    )


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """One attribute instance of the history."""

    entity_id: str
    name: str
    dataset_id: str
    observed_at: datetime
    has_observed_at: bool
    kind: str
    unit_code: str | None
    value_number: float | None
    value: Any
    geometry: str | None
    extras: dict[str, Any] | None

    @property
    def key(self) -> tuple[str, str, str, datetime]:
        return (self.entity_id, self.name, self.dataset_id, self.observed_at)


def instance_row(entity_id: str, row: AttributeRow, written_at: datetime) -> InstanceRow:
    """The history row of an attribute's current value (observedAt, or the write time)."""
    member = MAIN_MEMBER[row.kind]
    extras = {
        key: item
        for key, item in row.body.items()
        if key not in _INSTANCE_COLUMNS and key != member
    }
    return InstanceRow(
        entity_id=entity_id,
        name=row.name,
        dataset_id=row.dataset_id,
        observed_at=row.observed_at or written_at,
        has_observed_at=row.observed_at is not None,
        kind=row.kind,
        unit_code=row.unit_code,
        value_number=row.value_number,
        value=None if row.value_number is not None else row.value,
        geometry=row.geometry,
        extras=extras or None,
    )


#: Where a deletion recorded in the history keeps its time (4.5.7: ``deletedAt``).
DELETED_AT = "deletedAt"

#: The NGSI-LD Null of each attribute type's main member (4.5.7, 5.5.4).
_NULL_VALUES: dict[str, Any] = {
    "LanguageProperty": {"@none": "urn:ngsi-ld:null"},
    "ListProperty": ["urn:ngsi-ld:null"],
    "ListRelationship": ["urn:ngsi-ld:null"],
}


def deletion_row(
    entity_id: str,
    name: str,
    dataset_id: str,
    kind: str,
    deleted_at: datetime,
    *,
    value: Any = None,
) -> InstanceRow:
    """The history row recording that an attribute instance was deleted (4.5.7): its main
    member is NGSI-LD Null (or ``value``: an empty list for the scope), it has no
    observedAt, and ``deletedAt`` says when."""
    return InstanceRow(
        entity_id=entity_id,
        name=name,
        dataset_id=dataset_id,
        observed_at=deleted_at,
        has_observed_at=False,
        kind=kind,
        unit_code=None,
        value_number=None,
        value=_NULL_VALUES.get(kind, "urn:ngsi-ld:null") if value is None else value,
        geometry=None,
        extras={DELETED_AT: format_datetime(deleted_at)},
    )


def render_instance(
    *,
    kind: str,
    value_number: float | None,
    value: Any,
    unit_code: str | None,
    observed_at: datetime,
    has_observed_at: bool,
    dataset_id: str,
    extras: Mapping[str, Any] | None,
    instance_id: str | uuid.UUID,
    created_at: datetime | None = None,
    modified_at: datetime | None = None,
) -> dict[str, Any]:
    """A history row as an NGSI-LD attribute instance (temporal representation)."""
    main = value if value_number is None else _plain_number(value_number)
    instance: dict[str, Any] = {"type": kind, MAIN_MEMBER[kind]: main}
    if has_observed_at:
        instance["observedAt"] = format_datetime(observed_at)
    if unit_code:
        instance["unitCode"] = unit_code
    if dataset_id != DEFAULT_DATASET:
        instance["datasetId"] = dataset_id
    instance["instanceId"] = f"{INSTANCE_URN}{instance_id}"
    if extras:
        instance.update(extras)
    if created_at is not None:
        instance["createdAt"] = format_datetime(created_at)
    if modified_at is not None:
        instance["modifiedAt"] = format_datetime(modified_at)
    return instance


def _plain_number(number: float) -> int | float:
    """Give integers back as integers (21 stays 21, not 21.0)."""
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
