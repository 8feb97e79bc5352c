"""Expanded entities → what a client asked to see (GS CIM 009 4.5, 6.3.7, 6.3.15).

Formats: ``normalized`` (every attribute with its type), ``concise`` (types dropped where
they can be inferred back, 4.5.11) and ``keyValues`` (``simplified``: the main member
only). Options: ``sysAttrs`` (createdAt/modifiedAt), ``pick``/``omit`` (top-level members by
compacted name), ``lang`` (a LanguageProperty becomes a Property in the chosen language),
and GeoJSON (one Feature per entity, its geometry from ``geometryProperty``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from cityos_interoperability.ngsild.errors import BadRequestDataError, InvalidRequestError
from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.jsonld.expansion import MAIN_MEMBER

Format = Literal["normalized", "concise", "keyValues"]

_SYSTEM = ("createdAt", "modifiedAt", "deletedAt")
_CORE = frozenset({"id", "type", "scope", *_SYSTEM})
_WRAPPED_IN_KEY_VALUES = frozenset({"LanguageProperty", "JsonProperty", "VocabProperty"})


@dataclass(frozen=True)
class Representation:
    """How to render entities for one request.

    ``attrs`` (only set for linked entities: the requested ones are projected by the store)
    keeps the core members and the attributes named. ``linked`` holds, per compacted
    Relationship name, how the entities it links to are rendered (``join``, 4.5.23);
    without an entry they get the same options and no projection.
    """

    format: Format = "normalized"
    sys_attrs: bool = False
    pick: frozenset[str] | None = None
    omit: frozenset[str] | None = None
    lang: str | None = None
    attrs: frozenset[str] | None = None
    linked: Mapping[str, Representation] = field(default_factory=dict)

    def keeps(self, member: str) -> bool:
        """Whether the projection keeps the (compacted) top-level ``member``."""
        if self.pick is not None and member not in self.pick:
            return False
        if self.omit is not None and member in self.omit:
            return False
        return self.attrs is None or member in self.attrs or member in _CORE

    def linked_via(self, relationship: str) -> Representation:
        """How entities linked through ``relationship`` are rendered."""
        found = self.linked.get(relationship)
        if found is not None:
            return found
        return replace(self, pick=None, omit=None, attrs=None, linked={})


def parse_options(
    options: str | None, format_: str | None, *, allowed: Iterable[str] = ()
) -> tuple[Format, set[str]]:
    """``options=keyValues,sysAttrs`` / ``format=concise`` → (format, other options).

    An option or format the API does not define makes the request malformed (400
    InvalidRequest, 6.3.7); two formats at once are contradictory (400 BadRequestData).
    """
    flags = {item.strip() for item in (options or "").split(",") if item.strip()}
    known = {"keyValues", "simplified", "concise", "normalized", "sysAttrs", *allowed}
    unknown = flags - known
    if unknown:
        raise InvalidRequestError(f"unknown options: {', '.join(sorted(unknown))}")
    chosen: set[str] = set()
    if format_ is not None:
        if format_ not in {"keyValues", "simplified", "concise", "normalized"}:
            raise InvalidRequestError(f"unknown format {format_!r}")
        chosen.add(format_)
    else:
        chosen = flags & {"keyValues", "simplified", "concise", "normalized"}
    if len({"keyValues" if c == "simplified" else c for c in chosen}) > 1:
        raise BadRequestDataError("options ask for more than one representation format")
    name = next(iter(chosen), "normalized")
    fmt: Format = "keyValues" if name == "simplified" else name  # type: ignore[assignment]
    return fmt, flags - {"keyValues", "simplified", "concise", "normalized"}


def parse_list(value: str | None, what: str) -> frozenset[str] | None:
    """A comma-separated list parameter (``pick``, ``omit``, ``attrs``)."""
    if value is None:
        return None
    items = frozenset(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise InvalidRequestError(f"{what} must not be empty")
    return items


class Compactor:
    """Renders expanded entities with a request's :class:`TermMap` and representation."""

    def __init__(self, terms: TermMap, representation: Representation) -> None:
        self.terms = terms
        self.rep = representation

    def entity(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "id" in entity:  # a projection (pick) may have left it out
            out["id"] = entity["id"]
        types = [self.terms.compact(t) for t in _as_list(entity.get("type"))]
        if types:
            out["type"] = types[0] if len(types) == 1 else types
        if entity.get("scope"):
            scopes = _as_list(entity["scope"])
            out["scope"] = scopes[0] if len(scopes) == 1 else scopes
        if self.rep.sys_attrs:
            for member in _SYSTEM:
                if member in entity:
                    out[member] = entity[member]
        for name, value in entity.items():
            if name in {"id", "type", "scope", "@context", *_SYSTEM}:
                continue
            compact = self.terms.compact(name)
            out[compact] = self.attribute_value(value, compact)
        return self._pick_omit(out)

    def attribute_value(self, value: Any, name: str | None = None) -> Any:
        if isinstance(value, list):
            rendered = [self.attribute(item, name) for item in value]
            if len(rendered) == 1:
                return rendered[0]
            if self.rep.format == "keyValues" and all(isinstance(i, Mapping) for i in value):
                # 4.5.4: instances of a multi-attribute, keyed by datasetId ("@none": default).
                return {
                    "dataset": {
                        str(item.get("datasetId", "@none")): shown
                        for item, shown in zip(value, rendered, strict=True)
                    }
                }
            return rendered
        return self.attribute(value, name)

    def attribute(self, attribute: Mapping[str, Any], name: str | None = None) -> Any:
        if "entity" in attribute or "entityList" in attribute:
            return self._with_linked(attribute, name)
        kind = str(attribute.get("type", "Property"))
        main = MAIN_MEMBER.get(kind, "value")
        body: dict[str, Any] = {}
        main_value = attribute.get(main)
        if kind == "VocabProperty" and main_value is not None:
            main_value = (
                [self.terms.compact(v) for v in main_value]
                if isinstance(main_value, list)
                else self.terms.compact(main_value)
            )
        if kind == "LanguageProperty" and self.rep.lang is not None and main_value is not None:
            chosen = choose_language(main_value, self.rep.lang)
            if chosen is not None:
                kind, main = "Property", "value"
                tag, main_value = chosen
                body["lang"] = tag
        # keyValues shows an objectList bare, as a list of URIs (4.5.4)
        if (
            kind == "ListRelationship"
            and isinstance(main_value, list)
            and self.rep.format != "keyValues"
        ):
            main_value = [
                {"object": item} if isinstance(item, str) else item for item in main_value
            ]
        if self.rep.format == "keyValues":
            # 4.5.4: these keep their main member's name, so that the simplified form
            # reads back as the same attribute type (an object value would be a Property).
            if kind in _WRAPPED_IN_KEY_VALUES:
                return {main: main_value}
            return main_value
        for member, member_value in attribute.items():
            if member in {"type", MAIN_MEMBER.get(str(attribute.get("type")), "value")}:
                continue
            if member in _SYSTEM:
                if self.rep.sys_attrs:
                    body[member] = member_value
                continue
            if member in {"observedAt", "unitCode", "datasetId", "lang", "instanceId"}:
                body[member] = member_value
            elif member == "objectType":
                body[member] = [self.terms.compact(v) for v in _as_list(member_value)]
            else:
                body[self.terms.compact(member)] = self.attribute_value(member_value)
        if self.rep.format == "concise":
            if (
                not body
                and kind in {"Property", "GeoProperty"}
                and not isinstance(main_value, dict)
            ):
                return main_value
            if not body and kind == "GeoProperty":
                return main_value
            concise: dict[str, Any] = {main: main_value}
            if kind == "Property" and isinstance(main_value, dict):
                concise["type"] = kind  # an object value would read as something else
            concise.update(body)
            return concise
        return {"type": kind, main: main_value, **body}

    def _with_linked(self, attribute: Mapping[str, Any], name: str | None) -> Any:
        """A Relationship with its target inline (4.5.23): ``entity`` / ``entityList``."""
        inner = Compactor(self.terms, self.rep.linked_via(name or ""))
        plain = {k: v for k, v in attribute.items() if k not in {"entity", "entityList"}}
        rendered = self.attribute(plain, name)
        linked: Any
        if "entity" in attribute:
            member, linked = "entity", inner.entity(attribute["entity"])
        else:
            member, linked = "entityList", [inner.entity(e) for e in attribute["entityList"]]
        if self.rep.format == "keyValues":
            return linked
        if not isinstance(rendered, dict):
            rendered = {MAIN_MEMBER.get(str(attribute.get("type")), "object"): rendered}
        return {**rendered, member: linked}

    def _pick_omit(self, out: dict[str, Any]) -> dict[str, Any]:
        if self.rep.attrs is not None:
            out = {k: v for k, v in out.items() if k in self.rep.attrs or k in _CORE}
        if self.rep.pick is not None:
            out = {name: value for name, value in out.items() if name in self.rep.pick}
        if self.rep.omit is not None:
            out = {name: value for name, value in out.items() if name not in self.rep.omit}
        return out

    def feature(self, entity: Mapping[str, Any], geometry_property: str) -> dict[str, Any]:
        """One entity as a GeoJSON Feature (6.3.15)."""
        rendered = self.entity(entity)
        geometry_iri = self.terms.expand(geometry_property)
        geometry_attribute = entity.get(geometry_iri)
        if isinstance(geometry_attribute, list):
            # the default instance (no datasetId) when there is one
            defaults = [i for i in geometry_attribute if "datasetId" not in i]
            geometry_attribute = (defaults or geometry_attribute or [None])[0]
        geometry = None
        if (
            isinstance(geometry_attribute, Mapping)
            and geometry_attribute.get("type") == "GeoProperty"
        ):
            geometry = geometry_attribute.get("value")
        properties = {k: v for k, v in rendered.items() if k != "id"}
        return {
            "id": entity.get("id"),
            "type": "Feature",
            "geometry": geometry,
            "properties": properties,
        }


def choose_language(language_map: Mapping[str, Any], wanted: str) -> tuple[str, Any] | None:
    """The (tag, text) to show for ``lang`` (4.15): a tag, a list with weights, or ``*``.

    Ranges are tried by weight, then position; each as an RFC 4647 lookup (exact tag,
    case-insensitively, then the range truncated: ``nl-BE`` finds ``nl``) and then as a
    prefix of a longer tag (``en`` finds ``en-US``). ``*`` or no match: any language, the
    ``@none`` entry first.
    """
    by_lower = {key.lower(): key for key in language_map}
    preferences: list[tuple[float, int, str]] = []
    for position, item in enumerate(wanted.split(",")):
        tag, _, weight = item.strip().partition(";q=")
        try:
            q = float(weight) if weight else 1.0
        except ValueError:
            q = 1.0
        preferences.append((-q, position, tag.strip().lower()))
    for _, _, tag in sorted(preferences):
        if tag == "*":
            break
        subtags = tag.split("-")
        for length in range(len(subtags), 0, -1):
            key = by_lower.get("-".join(subtags[:length]))
            if key is not None:
                return key, language_map[key]
        for lower, key in by_lower.items():
            if lower.startswith(tag + "-"):
                return key, language_map[key]
    if "@none" in language_map:
        return "@none", language_map["@none"]
    for key, text in language_map.items():
        return key, text
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
