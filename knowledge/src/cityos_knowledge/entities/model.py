"""Expanded NGSI-LD entities and fragments as the facade receives them (pure validation).

The facade takes NGSI-LD normalized JSON whose attribute names and types are expanded IRIs
(the API expands a client's terms with its ``@context``). An entity is ``{"id", "type",
"scope"?, <attribute IRI>: attribute | [attribute, …]}``; several objects under one name are
instances with distinct datasetIds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cityos_knowledge.entities.attributes import AttributeRow, attribute_row
from cityos_knowledge.entities.limits import check_key_length
from cityos_knowledge.errors import BadRequestDataError
from cityos_knowledge.store.tables import DEFAULT_DATASET

#: Members of an entity that are not attributes.
ENTITY_MEMBERS = frozenset(
    {"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"}
)

#: NGSI-LD's null in merge-patch and partial updates: "delete this".
NGSI_LD_NULL = "urn:ngsi-ld:null"

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+")
_SCOPE = re.compile(r"(/[^/\s#+]+)+")


def validate_entity_id(entity_id: Any) -> str:
    """An entity id must be a URI, short enough to index (:mod:`.limits`)."""
    if isinstance(entity_id, str):
        check_key_length(entity_id, "entity id")
    if not isinstance(entity_id, str) or not _URI.fullmatch(entity_id):
        raise BadRequestDataError(f"entity id {entity_id!r} is not a URI")
    return entity_id


def _string_list(value: Any, what: str, *, pattern: re.Pattern[str] | None = None) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise BadRequestDataError(f"{what} must be a string or a non-empty list of strings")
    found: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item:
            raise BadRequestDataError(f"{what} must hold non-empty strings")
        check_key_length(item, what)
        if pattern is not None and not pattern.fullmatch(item):
            raise BadRequestDataError(f"{what}: {item!r} is not valid")
        if item not in found:
            found.append(item)
    return found


def parse_types(value: Any) -> list[str]:
    return _string_list(value, "type")


def parse_scopes(value: Any) -> list[str]:
    return _string_list(value, "scope", pattern=_SCOPE)


@dataclass
class Fragment:
    """Attributes (and optionally types and scopes) to write to one entity.

    ``deleted`` lists (name, datasetId or None for every instance) pairs that the fragment
    sets to NGSI-LD null (merge-patch and partial updates delete them).
    """

    types: list[str] | None = None
    scopes: list[str] | None = None
    attributes: list[AttributeRow] = field(default_factory=list)
    deleted: list[tuple[str, str | None]] = field(default_factory=list)
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        seen: list[str] = list(self.raw)
        for name, _ in self.deleted:
            if name not in seen:
                seen.append(name)
        return seen


@dataclass
class Entity(Fragment):
    """A whole entity: an id and at least one type."""

    id: str = ""


def _instances(name: str, value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestDataError(f"attribute {name}: an empty list is not an attribute")
    for item in items:
        if not isinstance(item, dict):
            raise BadRequestDataError(f"attribute {name} must be a JSON object (or a list)")
    return items


def is_null(instance: Mapping[str, Any]) -> bool:
    """Whether an attribute instance is NGSI-LD Null ("delete it"), LanguageProperty included."""
    if instance.get("languageMap") == {"@none": NGSI_LD_NULL}:
        return True
    if instance.get("type") is None and set(instance) <= {"datasetId", "value", "object"}:
        return any(instance.get(member) == NGSI_LD_NULL for member in ("value", "object"))
    for member in ("value", "object", "languageMap", "vocab", "json", "valueList", "objectList"):
        if instance.get(member) == NGSI_LD_NULL:
            return True
    return False


def parse_fragment(
    document: Mapping[str, Any],
    *,
    allow_null: bool = False,
    entity_members: bool = True,
    validate: bool = True,
) -> Fragment:
    """Validate attributes of a fragment (every key that is not an entity member).

    With ``validate=False`` only ``raw`` is filled: partial attributes of a merge are
    validated once merged with what the entity has.
    """
    if not isinstance(document, Mapping):
        raise BadRequestDataError("an entity fragment must be a JSON object")
    fragment = Fragment()
    if entity_members and "type" in document:
        fragment.types = parse_types(document["type"])
    if entity_members and "scope" in document:
        fragment.scopes = parse_scopes(document["scope"])
    for name, value in document.items():
        if name in ENTITY_MEMBERS:
            continue
        if allow_null and value == NGSI_LD_NULL:
            fragment.deleted.append((name, None))
            continue
        seen_datasets: set[str] = set()
        for instance in _instances(name, value):
            if allow_null and is_null(instance):
                # an instance set to null names its datasetId, no datasetId the default one
                dataset = instance.get("datasetId")
                fragment.deleted.append(
                    (name, dataset if isinstance(dataset, str) else DEFAULT_DATASET)
                )
                continue
            dataset = instance.get("datasetId", DEFAULT_DATASET)
            if dataset in seen_datasets:
                raise BadRequestDataError(f"attribute {name}: datasetId {dataset} appears twice")
            seen_datasets.add(dataset)
            if validate:
                fragment.attributes.append(attribute_row(name, instance))
            fragment.raw.setdefault(name, []).append(dict(instance))
    return fragment


def parse_entity(document: Mapping[str, Any]) -> Entity:
    """Validate a whole entity (creation, replacement, batch create/upsert)."""
    if not isinstance(document, Mapping):
        raise BadRequestDataError("an entity must be a JSON object")
    entity_id = validate_entity_id(document.get("id"))
    if "type" not in document:
        raise BadRequestDataError(f"entity {entity_id} has no type")
    fragment = parse_fragment(document)
    return Entity(
        types=fragment.types,
        scopes=fragment.scopes,
        attributes=fragment.attributes,
        deleted=fragment.deleted,
        raw=fragment.raw,
        id=entity_id,
    )
