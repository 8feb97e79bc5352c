"""Temporal entities in and out: expansion of what clients send, compaction of answers.

A temporal entity (4.5.7) has, for each attribute, an array of instances; instances of one
attribute may share a datasetId, so they are expanded one by one with the API's
:class:`Expander` rather than as an entity. Answers come from the knowledge facade in
expanded form, in one of three representations: normalized (instances, compacted like
entity attributes), temporalValues (``{"type", "values": [[value, time], …]}``) and
aggregatedValues (``{"type", "<method>": [[value, start, end], …]}``); the last two keep
their members and only their attribute names are compacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from cityos_interoperability.ngsild.errors import BadRequestDataError
from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.jsonld.expansion import (
    NGSI_LD_NULL,
    Expander,
    is_uri,
    scopes,
)
from cityos_interoperability.ngsild.representation import Compactor, Representation

TemporalFormat = Literal["normalized", "temporalValues", "aggregatedValues"]

_ENTITY_MEMBERS = frozenset({"id", "type", "scope", "@context", "createdAt", "modifiedAt"})

#: temporalValues members whose values are objects in the simplified representation.
_WRAPPED = {"languageMaps": "languageMap", "jsons": "json", "vocabs": "vocab"}


#: ``datasetId`` naming the default instance of an attribute (the one without a datasetId).
DEFAULT_DATASET = "@none"


def parse_dataset_selection(text: str | None) -> frozenset[str] | None:
    """``datasetId=a,b`` or ``@none`` (4.5.5): which attribute instances an answer keeps."""
    if text is None:
        return None
    wanted = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not wanted:
        raise BadRequestDataError("datasetId names no dataset")
    invalid = sorted(item for item in wanted if item != DEFAULT_DATASET and not is_uri(item))
    if invalid:
        raise BadRequestDataError(f"datasetId {invalid[0]!r} is neither a URI nor @none")
    return wanted


def select_datasets(entity: Mapping[str, Any], wanted: frozenset[str]) -> dict[str, Any]:
    """A temporal answer (expanded, any representation) with the ``wanted`` datasets only.

    Each attribute holds instances (normalized) or one object per datasetId (temporalValues,
    aggregatedValues); an attribute left with none of them is dropped.
    """
    selected: dict[str, Any] = {}
    for name, value in entity.items():
        if name in _ENTITY_MEMBERS:
            selected[name] = value
            continue
        items = [
            item
            for item in _as_list(value)
            if isinstance(item, Mapping) and item.get("datasetId", DEFAULT_DATASET) in wanted
        ]
        if items:
            selected[name] = items if isinstance(value, list) else items[0]
    return selected


def expand_temporal_entity(terms: TermMap, body: object) -> dict[str, Any]:
    """A temporal entity (POST /temporal/entities) in expanded form."""
    if not isinstance(body, Mapping):
        raise BadRequestDataError("a temporal entity must be a JSON object")
    if not is_uri(body.get("id")):
        raise BadRequestDataError(f"entity id {body.get('id')!r} is not a URI")
    if body.get("type") is None:
        raise BadRequestDataError("a temporal entity needs a type")
    expander = Expander(terms)
    expanded: dict[str, Any] = {"id": body["id"], "type": expander.types(body["type"])}
    if "scope" in body:
        expanded["scope"] = scopes(body["scope"])
    expanded.update(expand_temporal_fragment(terms, body, allow_entity_members=True))
    return expanded


def expand_temporal_fragment(
    terms: TermMap, body: object, *, allow_entity_members: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Attributes with their instances (POST /temporal/entities/{id}/attrs).

    An instance whose value is NGSI-LD Null records a deletion (4.5.7; 5.5.4 lets the
    temporal evolution carry it).
    """
    if not isinstance(body, Mapping):
        raise BadRequestDataError("temporal attributes must be a JSON object")
    expander = Expander(terms, allow_null=True)
    expanded: dict[str, list[dict[str, Any]]] = {}
    for name, value in body.items():
        if name in _ENTITY_MEMBERS:
            if allow_entity_members or name == "@context":
                continue
            raise BadRequestDataError(f"{name} cannot be set through temporal attributes")
        instances = value if isinstance(value, list) else [value]
        if not instances:
            raise BadRequestDataError(f"{name}: an attribute needs at least one instance")
        if any(item == NGSI_LD_NULL for item in instances):
            # Null deletes only inside an instance; a member set to it is no instance (5.5.4).
            raise BadRequestDataError(f"{name}: NGSI-LD Null is not an attribute instance")
        expanded[expander.name(name)] = [
            expander.attribute(item, f"{name}[{index}]") for index, item in enumerate(instances)
        ]
    return expanded


def expand_instance(terms: TermMap, name: str, body: object) -> dict[str, Any]:
    """A partial attribute instance (PATCH …/attrs/{attrId}/{instanceId})."""
    if not isinstance(body, Mapping) or not body:
        raise BadRequestDataError("an attribute instance must be a non-empty JSON object")
    return Expander(terms, partial=True).attribute(body, name)


class TemporalCompactor:
    """Renders expanded temporal answers with a request's @context."""

    def __init__(
        self,
        terms: TermMap,
        fmt: TemporalFormat,
        *,
        sys_attrs: bool = False,
        pick: frozenset[str] | None = None,
        omit: frozenset[str] | None = None,
        lang: str | None = None,
    ) -> None:
        self.terms = terms
        self.format = fmt
        self._pick = pick
        self._omit = omit
        self._compactor = Compactor(terms, Representation(sys_attrs=sys_attrs, lang=lang))

    def entity(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        types = [self.terms.compact(t) for t in _as_list(entity.get("type"))]
        out: dict[str, Any] = {"id": entity["id"], "type": types[0] if len(types) == 1 else types}
        for name, value in entity.items():
            if name in _ENTITY_MEMBERS:
                continue
            items = value if isinstance(value, list) else [value]
            rendered = [self._attribute(item) for item in items]
            if self.format == "normalized":
                out[self.terms.compact(name)] = rendered
            else:
                out[self.terms.compact(name)] = rendered[0] if len(rendered) == 1 else rendered
        if self._pick is not None:
            out = {name: value for name, value in out.items() if name in self._pick}
        if self._omit is not None:
            out = {name: value for name, value in out.items() if name not in self._omit}
        return out

    def _attribute(self, item: Mapping[str, Any]) -> Any:
        if self.format == "normalized":
            rendered = self._compactor.attribute(item)
            if "deletedAt" in item and isinstance(rendered, dict):
                # A recorded deletion is told by its deletedAt (4.5.7), sysAttrs or not.
                rendered["deletedAt"] = item["deletedAt"]
            return rendered
        rendered = dict(item)
        if self.format == "temporalValues":
            for member, wrapper in _WRAPPED.items():
                if isinstance(rendered.get(member), list):
                    rendered[member] = [self._wrap(pair, wrapper) for pair in rendered[member]]
        return rendered

    def _wrap(self, pair: Any, wrapper: str) -> Any:
        """``[value, time]`` → ``[{wrapper: value}, time]`` (4.5.9: the value is an object)."""
        if not isinstance(pair, list) or len(pair) != 2:
            return pair
        value = pair[0]
        if isinstance(value, Mapping) and set(value) == {wrapper}:
            return pair
        if wrapper == "vocab":
            value = (
                [self.terms.compact(v) for v in value]
                if isinstance(value, list)
                else self.terms.compact(value)
            )
        return [{wrapper: value}, pair[1]]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
