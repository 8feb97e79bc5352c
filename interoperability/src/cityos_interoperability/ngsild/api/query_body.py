"""The Query body of ``POST /entityOperations/query`` (GS CIM 009 5.2.23, 5.2.33, 5.2.43).

The body is checked member by member (400 BadRequestData on a wrong shape) and turned into
the query-string parameters of ``GET /entities``, so both forms share one parser. Entity
selectors (5.2.33) need a ``type``; a selector's ``id`` (a URI or an array of URIs) takes
precedence over its ``idPattern``. Selectors are joined as one filter: their types, ids and
patterns are each alternatives.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from cityos_interoperability.ngsild.errors import BadRequestDataError, OperationNotSupportedError
from cityos_interoperability.ngsild.jsonld.expansion import is_uri

#: A BCP 47 language tag (RFC 5646 syntax, with extensions such as ``-u-co-phonebk``).
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")
#: Members of a Query body that only the temporal query accepts (Table 5.2.23-1).
_TEMPORAL_ONLY = ("temporalQ",)


def query_parameters(body: Any) -> dict[str, str]:
    """The ``GET /entities`` parameters a Query body stands for (400 on a wrong shape)."""
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestDataError('the body must be a Query object ({"type": "Query", ...})')
    for member in _TEMPORAL_ONLY:
        if member in body:
            raise BadRequestDataError(f"{member} is only for the temporal query (5.7.4)")
    found: dict[str, str | None] = {}
    if "entities" in body:
        found.update(_selectors(body["entities"]))
    for member in ("attrs", "pick", "omit", "datasetId"):
        if member in body:
            found[member] = ",".join(_strings(member, body[member]))
    for member in ("q", "scopeQ", "lang", "join"):
        if member in body:
            found[member] = _string(member, body[member])
    if "joinLevel" in body:
        level = body["joinLevel"]
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise BadRequestDataError("joinLevel must be a positive integer")
        found["joinLevel"] = str(level)
    if "geoQ" in body:
        found.update(_geo(body["geoQ"]))
    if "ordering" in body:
        found.update(_ordering(body["ordering"]))
    return {name: value for name, value in found.items() if value}


def _selectors(selectors: Any) -> dict[str, str | None]:
    if not isinstance(selectors, list) or not selectors:
        raise BadRequestDataError("entities must be a non-empty array of entity selectors")
    types: list[str] = []
    ids: list[str] = []
    patterns: list[str] = []
    for selector in selectors:
        if not isinstance(selector, dict):
            raise BadRequestDataError("an entity selector must be an object")
        if "type" not in selector:
            raise BadRequestDataError("an entity selector needs a type (5.2.33)")
        types.append(_string("type", selector["type"]))
        if "id" in selector:
            given = selector["id"]
            for entity_id in given if isinstance(given, list) else [given]:
                if not isinstance(entity_id, str) or not is_uri(entity_id):
                    raise BadRequestDataError(f"entity selector id {entity_id!r} is not a URI")
                ids.append(entity_id)
        elif "idPattern" in selector:
            patterns.append(_string("idPattern", selector["idPattern"]))
    return {
        "type": ",".join(types),
        "id": ",".join(ids),
        "idPattern": "|".join(f"(?:{p})" for p in patterns)
        if len(patterns) > 1
        else "".join(patterns),
    }


def _alternatives(patterns: list[str]) -> str:
    """One regular expression matching any of ``patterns``."""
    return patterns[0] if len(patterns) == 1 else "|".join(f"(?:{p})" for p in patterns)


def _geo(geo: Any) -> dict[str, str]:
    if not isinstance(geo, dict):
        raise BadRequestDataError("geoQ must be an object")
    found = {
        member: _string(member, geo[member])
        for member in ("georel", "geometry", "geoproperty")
        if member in geo
    }
    if "coordinates" in geo:
        found["coordinates"] = _coordinates(geo["coordinates"])
    return found


def _ordering(ordering: Any) -> dict[str, str | None]:
    """``ordering`` (5.2.43): orderBy, and a reference point for distance ordering."""
    if not isinstance(ordering, dict):
        raise BadRequestDataError("ordering must be an object")
    found: dict[str, str | None] = {}
    if "orderBy" in ordering:
        found["orderBy"] = ",".join(_strings("orderBy", ordering["orderBy"]))
    if "geometry" in ordering:
        geometry = _string("geometry", ordering["geometry"])
        if geometry != "Point":
            raise BadRequestDataError("ordering by distance takes a Point")
    if "coordinates" in ordering:
        found["orderFrom"] = _coordinates(ordering["coordinates"])
    if "collation" in ordering:
        check_collation(_string("collation", ordering["collation"]))
    return found


def check_collation(collation: str | None) -> None:
    """``collation`` (4.23.3): 400 when it is not a language tag; 422 otherwise, since the
    store orders strings by code point and cannot honour it (never a silent fallback)."""
    if collation is None:
        return
    if not _LANGUAGE_TAG.fullmatch(collation):
        raise BadRequestDataError(f"collation {collation!r} is not a BCP 47 language tag")
    raise OperationNotSupportedError("ordering with a collation is not supported")


def _coordinates(value: Any) -> str:
    if not isinstance(value, list):
        raise BadRequestDataError("coordinates must be a JSON array")
    return orjson.dumps(value).decode()


def _string(member: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequestDataError(f"{member} must be a string")
    return value


def _strings(member: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequestDataError(f"{member} must be a non-empty array of strings")
    if not all(isinstance(item, str) for item in value):
        raise BadRequestDataError(f"{member} must be an array of strings")
    return list(value)
