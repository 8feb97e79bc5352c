"""Client NGSI-LD JSON (normalized or concise, compacted) → the facade's expanded form.

The expanded form is NGSI-LD normalized JSON in which every attribute name, sub-attribute
name, entity type and vocab value is an IRI; NGSI-LD's own members (``type``, ``value``,
``object``, ``observedAt``, …) keep their short names. It is what the knowledge store keeps
(``cityos_knowledge.store.tables``): ``{"id", "type": [IRI…], "scope"?, IRI: attribute or
[attribute…] (one per datasetId)}``.

Validation lives here too, because it is about the shape of what the client sent: a
malformed entity or fragment raises :class:`BadRequestDataError` with the path of the problem.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

from cityos_interoperability.ngsild.errors import BadRequestDataError
from cityos_interoperability.ngsild.jsonld.context import TermMap

#: Attribute type → its main member.
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
ATTRIBUTE_TYPES = frozenset(MAIN_MEMBER)

#: Members of an attribute that are NGSI-LD's own, not sub-attributes.
ATTRIBUTE_MEMBERS = frozenset(
    {
        "type",
        "value",
        "object",
        "languageMap",
        "vocab",
        "json",
        "valueList",
        "objectList",
        "observedAt",
        "unitCode",
        "datasetId",
        "objectType",
        "lang",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
        "previousVocab",
        "previousJson",
        "previousValueList",
        "previousObjectList",
    }
)
#: Members the broker sets itself; a client's values are ignored.
SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})
ENTITY_MEMBERS = frozenset(
    {"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"}
)

GEOJSON_GEOMETRIES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
GEOJSON_COLLECTION = "GeometryCollection"

#: Core terms that are members of an attribute, never attribute names themselves (4.5.1).
RESERVED_ATTRIBUTE_NAMES = ATTRIBUTE_MEMBERS - {"type"}
#: Core attributes that must be GeoProperties.
GEO_ATTRIBUTES = frozenset(
    {
        "https://uri.etsi.org/ngsi-ld/location",
        "https://uri.etsi.org/ngsi-ld/observationSpace",
        "https://uri.etsi.org/ngsi-ld/operationSpace",
    }
)
#: Members only allowed inside an ``ngsildproof``.
SEALED_MEMBERS = frozenset({"entityIdSealed", "entityTypeSealed"})
OUTPUT_ONLY_MEMBERS = frozenset(
    {
        "previousValue",
        "previousObject",
        "previousLanguageMap",
        "previousVocab",
        "previousJson",
        "previousValueList",
        "previousObjectList",
    }
)

#: The JSON-LD null of NGSI-LD merge-patch (5.5.10: delete this attribute).
NGSI_LD_NULL = "urn:ngsi-ld:null"

# 4.6.2: characters a name may not contain (they break the query language and URLs).
_FORBIDDEN_NAME = re.compile(r"[<>\"'=;()\s]")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_SCOPE = re.compile(r"^/[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$|^/$")


# Invisible characters that pass str.isprintable() but make two ids look the same: Hangul
# fillers, the blank Braille pattern and the variation selectors.
_INVISIBLE = re.compile("[\u115f\u1160\u3164\uffa0\u2800\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def _visible(text: str) -> bool:
    # Whole-string checks in C: this runs for every entity id and attribute name.
    return text.isprintable() and _INVISIBLE.search(text) is None


def is_uri(value: object) -> bool:
    return isinstance(value, str) and bool(_URI.match(value)) and _visible(value)


def check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name or _FORBIDDEN_NAME.search(name) or not _visible(name):
        raise BadRequestDataError(f"{where}: {name!r} is not a valid NGSI-LD name")
    return name


def check_type_name(name: object, where: str) -> str:
    """An entity type: a name that does not start with a digit, or an IRI."""
    check_name(name, where)
    assert isinstance(name, str)
    if name[0].isdigit():
        raise BadRequestDataError(f"{where}: {name!r} starts with a digit")
    return name


def check_datetime(value: object, where: str) -> str:
    """An ISO 8601 date-time in UTC ending with ``Z`` (4.6.3)."""
    if not isinstance(value, str):
        raise BadRequestDataError(f"{where} must be an ISO 8601 date-time string")
    if not value.endswith("Z"):
        raise BadRequestDataError(f"{where}: {value!r} must be in UTC and end with 'Z'")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequestDataError(f"{where}: {value!r} is not an ISO 8601 date-time") from exc
    return value


def check_geometry(value: object, where: str) -> dict[str, Any]:
    """A GeoJSON geometry (a GeoProperty's value), checked enough to reach PostGIS safely."""
    if not isinstance(value, dict):
        raise BadRequestDataError(f"{where}: a GeoProperty value must be a GeoJSON geometry")
    kind = value.get("type")
    if kind not in GEOJSON_GEOMETRIES:
        raise BadRequestDataError(f"{where}: {kind!r} is not a GeoJSON geometry type")
    depth = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2}
    _check_coordinates(value.get("coordinates"), depth.get(str(kind), 3), where)
    return value


def _check_coordinates(coordinates: object, depth: int, where: str) -> None:
    if depth == 0:
        if (
            not isinstance(coordinates, list)
            or not 2 <= len(coordinates) <= 3
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates)
        ):
            raise BadRequestDataError(f"{where}: invalid GeoJSON coordinates")
        return
    if not isinstance(coordinates, list) or not coordinates:
        raise BadRequestDataError(f"{where}: invalid GeoJSON coordinates")
    for item in coordinates:
        _check_coordinates(item, depth - 1, where)


def infer_attribute(value: object) -> dict[str, Any]:
    """The normalized form of a concise attribute value (4.5.11, concise representation)."""
    if isinstance(value, dict):
        kind = value.get("type")
        if isinstance(kind, str) and kind in ATTRIBUTE_TYPES:
            return dict(value)
        geometry_type = kind in GEOJSON_GEOMETRIES or kind == GEOJSON_COLLECTION
        if geometry_type and ("coordinates" in value or "geometries" in value):
            return {"type": "GeoProperty", "value": value}
        if kind is not None and any(member in value for member in MAIN_MEMBER.values()):
            raise BadRequestDataError(f"{kind!r} is not an NGSI-LD attribute type")
        for kind_name, member in MAIN_MEMBER.items():
            if member in value and kind_name != "GeoProperty":
                inferred = dict(value)
                inferred["type"] = kind_name
                if kind_name == "Property" and _looks_geo(value.get("value")):
                    inferred["type"] = "GeoProperty"
                return inferred
        return {"type": "Property", "value": value}
    return {"type": "Property", "value": value}


def _looks_geo(value: object) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") in GEOJSON_GEOMETRIES
        and "coordinates" in value
    )


def _is_attribute_list(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) for item in value)
        and all(
            item.get("type") in ATTRIBUTE_TYPES
            or any(member in item for member in MAIN_MEMBER.values())
            for item in value
        )
    )


class Expander:
    """Expands entities and attribute fragments with one request's :class:`TermMap`."""

    def __init__(self, terms: TermMap, *, partial: bool = False, allow_null: bool = False) -> None:
        self.terms = terms
        #: In a partial update a main member may be missing (only metadata changes).
        self.partial = partial
        #: ``urn:ngsi-ld:null`` (delete this) is allowed in updates and merges.
        self.allow_null = allow_null or partial

    def entity(
        self, body: object, *, require_id: bool = True, require_type: bool = True
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequestDataError("an entity must be a JSON object")
        entity_id = body.get("id", body.get("@id"))
        if (require_id or entity_id is not None) and not is_uri(entity_id):
            raise BadRequestDataError(f"entity id {entity_id!r} is not a URI")
        types = body.get("type", body.get("@type"))
        if types is None and require_type:
            raise BadRequestDataError("an entity needs a type")
        expanded: dict[str, Any] = {}
        if entity_id is not None:
            expanded["id"] = entity_id
        if types is not None:
            expanded["type"] = self.types(types)
        if "scope" in body:
            expanded["scope"] = scopes(body["scope"])
        for name, value in body.items():
            if name in ENTITY_MEMBERS or name in {"@id", "@type"}:
                continue
            iri = self.name(name)
            expanded[iri] = self._checked(iri, name, self.attribute_value(value, name))
        return expanded

    @staticmethod
    def _checked(iri: str, name: str, value: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """Rules tied to one core attribute: geo attributes, proofs."""
        for instance in value if isinstance(value, list) else [value]:
            if iri in GEO_ATTRIBUTES and instance.get("type") != "GeoProperty":
                raise BadRequestDataError(f"{name} must be a GeoProperty")
            if iri.endswith("/ngsildproof") and not isinstance(instance.get("value"), dict):
                raise BadRequestDataError("ngsildproof must hold an object")
        return value

    def fragment(self, body: object) -> dict[str, Any]:
        """Attributes to append or update (``id``/``type`` allowed and checked, not kept)."""
        if not isinstance(body, dict):
            raise BadRequestDataError("the attributes fragment must be a JSON object")
        expanded: dict[str, Any] = {}
        for name, value in body.items():
            if name in {"id", "@id", "@context", "createdAt", "modifiedAt"}:
                continue
            if name in {"type", "@type"}:
                expanded["type"] = self.types(value)
                continue
            if name == "scope":
                expanded["scope"] = scopes(value)
                continue
            iri = self.name(name)
            expanded[iri] = self._checked(iri, name, self.attribute_value(value, name))
        return expanded

    def types(self, types: object) -> list[str]:
        values = types if isinstance(types, list) else [types]
        if not values:
            raise BadRequestDataError("an entity needs at least one type")
        return [self.terms.expand(check_type_name(item, "entity type")) for item in values]

    def name(self, name: str) -> str:
        if name in RESERVED_ATTRIBUTE_NAMES or name in SEALED_MEMBERS:
            raise BadRequestDataError(f"{name!r} is a core member, not an attribute name")
        if name == "@context":
            raise BadRequestDataError("@context belongs at the top of the body only")
        return self.terms.expand(check_name(name, "attribute name"))

    def attribute_value(self, value: object, where: str) -> dict[str, Any] | list[dict[str, Any]]:
        """One attribute, or a list of its instances (one per datasetId)."""
        if value is None:
            raise BadRequestDataError(f"{where}: an attribute value cannot be null")
        if _is_attribute_list(value):
            assert isinstance(value, list)
            instances = [self.attribute(item, f"{where}[{i}]") for i, item in enumerate(value)]
            dataset_ids = [item.get("datasetId") for item in instances]
            if len(set(dataset_ids)) != len(dataset_ids):
                raise BadRequestDataError(f"{where}: two instances share a datasetId")
            return instances
        return self.attribute(value, where)

    def attribute(self, value: object, where: str) -> dict[str, Any]:
        attribute = infer_attribute(value)
        kind = attribute.get("type")
        if kind not in ATTRIBUTE_TYPES:
            raise BadRequestDataError(f"{where}: {kind!r} is not an NGSI-LD attribute type")
        assert isinstance(kind, str)
        main = MAIN_MEMBER[kind]
        _check_members(attribute, kind, where)
        expanded: dict[str, Any] = {"type": kind}
        if main in attribute:
            expanded[main] = self._main_value(kind, attribute[main], where)
        elif not self.partial:
            raise BadRequestDataError(f"{where}: a {kind} needs a {main!r} member")
        for member, member_value in attribute.items():
            if member in {"type", main} or member in SYSTEM_MEMBERS:
                continue
            if member == "observedAt":
                expanded[member] = check_datetime(member_value, f"{where}.observedAt")
            elif member == "unitCode":
                if not isinstance(member_value, str):
                    raise BadRequestDataError(f"{where}.unitCode must be a string")
                expanded[member] = member_value
            elif member == "datasetId":
                if member_value == "@none":
                    continue  # the default instance, spelled out
                if not is_uri(member_value):
                    raise BadRequestDataError(f"{where}.datasetId must be a URI")
                expanded[member] = member_value
            elif member == "objectType":
                expanded[member] = self.types(member_value)
            elif member in ATTRIBUTE_MEMBERS:
                continue  # a main member of another type, or an output-only member
            else:
                sub_where = f"{where}.{member}"
                expanded[self.name(member)] = self.attribute_value(member_value, sub_where)
        return expanded

    def _main_value(self, kind: str, value: object, where: str) -> Any:
        if value is None or (value == NGSI_LD_NULL and not self.allow_null):
            raise BadRequestDataError(f"{where}: the {MAIN_MEMBER[kind]} cannot be null")
        if kind != "JsonProperty" and _contains_null(value):
            raise BadRequestDataError(f"{where}: a value cannot contain null")
        if kind == "Relationship":
            objects = value if isinstance(value, list) else [value]
            if not objects or not all(is_uri(item) for item in objects):
                raise BadRequestDataError(f"{where}: a Relationship's object must be URI(s)")
            return value
        if kind == "ListRelationship":
            if not isinstance(value, list) or not all(
                is_uri(item) or (isinstance(item, dict) and is_uri(item.get("object")))
                for item in value
            ):
                raise BadRequestDataError(f"{where}: objectList must be an array of URIs")
            return [item["object"] if isinstance(item, dict) else item for item in value]
        if kind == "GeoProperty":
            if value == NGSI_LD_NULL:
                return value
            if isinstance(value, str):
                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    raise BadRequestDataError(f"{where}: not a GeoJSON geometry") from exc
            return check_geometry(value, where)
        if kind == "JsonProperty" and not isinstance(value, dict | list):
            raise BadRequestDataError(f"{where}: json must be an object or an array")
        if kind == "LanguageProperty":
            if not isinstance(value, dict) or not all(
                isinstance(text, str | list) and tag for tag, text in value.items()
            ):
                raise BadRequestDataError(f"{where}: languageMap must map language tags to strings")
            return value
        if kind == "VocabProperty":
            if isinstance(value, list):
                return [self.terms.expand(check_name(item, where)) for item in value]
            return self.terms.expand(check_name(value, where))
        if kind == "ListProperty" and not isinstance(value, list):
            raise BadRequestDataError(f"{where}: valueList must be an array")
        return value


def _contains_null(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_contains_null(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_null(item) for item in value)
    return False


def _check_members(attribute: dict[str, Any], kind: str, where: str) -> None:
    """Members another attribute type owns, output-only members and misplaced seals: 400."""
    own = MAIN_MEMBER[kind]
    for member in attribute:
        if member in MAIN_MEMBER.values() and member != own:
            raise BadRequestDataError(f"{where}: a {kind} cannot have {member!r}")
        if member in OUTPUT_ONLY_MEMBERS:
            raise BadRequestDataError(f"{where}: {member!r} is output only")
        if member in SEALED_MEMBERS:
            raise BadRequestDataError(f"{where}: {member!r} belongs inside ngsildproof")
        if member == "@context":
            raise BadRequestDataError(f"{where}: @context belongs at the top of the body only")
    if kind in {"Relationship", "ListRelationship", "JsonProperty"} and "unitCode" in attribute:
        raise BadRequestDataError(f"{where}: a {kind} has no unitCode")


def scopes(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str) or not _SCOPE.match(item):
            raise BadRequestDataError(f"scope {item!r} is not a valid scope (/a/b)")
    return list(items)
