"""Linked Entity retrieval (GS CIM 009 4.5.23): ``join=flat|inline`` up to ``joinLevel`` hops.

Works on expanded entities, after the requested ones were read: the Relationships and
ListRelationships a requester keeps (its representation's pick/omit/attrs) are followed,
level by level, one read per level for all the targets found at that level. ``inline`` puts
each target inside the Relationship instance that names it (``entity``, or ``entityList``
for a ListRelationship or a Relationship naming several objects); ``flat`` returns every
target once, after the requested entities. A target that does not exist (or is not
visible to the tenant) is left out: the Relationship keeps its ``object``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.representation import Representation

Join = Literal["flat", "inline"]
#: Reads the live entities among ``ids`` (expanded), keyed by id.
Fetch = Callable[[Sequence[str]], Mapping[str, dict[str, Any]]]

_NOT_ATTRIBUTES = frozenset({"id", "type", "scope", "@context", "createdAt", "modifiedAt"})


@dataclass
class _Link:
    """One Relationship instance of one entity, and what it points to."""

    instance: dict[str, Any]
    targets: list[str]
    listed: bool
    representation: Representation


@dataclass(frozen=True)
class Joined:
    """The requested entities (with inline targets) and, for ``flat``, the linked ones."""

    entities: list[dict[str, Any]]
    linked: list[tuple[dict[str, Any], Representation]]


def join_linked(
    entities: list[dict[str, Any]],
    representation: Representation,
    terms: TermMap,
    fetch: Fetch,
    *,
    join: Join,
    level: int,
) -> Joined:
    """Follow the kept Relationships of ``entities`` ``level`` hops deep."""
    emitted = {str(entity.get("id")) for entity in entities}
    linked: list[tuple[dict[str, Any], Representation]] = []
    frontier: list[tuple[dict[str, Any], Representation]] = [
        (entity, representation) for entity in entities
    ]
    for _ in range(level):
        links = [link for entity, rep in frontier for link in _links(entity, rep, terms)]
        wanted = list(dict.fromkeys(target for link in links for target in link.targets))
        if not wanted:
            break
        found = fetch(wanted)
        frontier = []
        for link in links:
            targets = [found[target] for target in link.targets if target in found]
            if not targets:
                continue
            if join == "inline":
                copies = [copy.deepcopy(target) for target in targets]
                if link.listed:
                    link.instance["entityList"] = copies
                else:
                    link.instance["entity"] = copies[0]
                frontier.extend((target, link.representation) for target in copies)
                continue
            for target in targets:
                target_id = str(target.get("id"))
                if target_id not in emitted:
                    emitted.add(target_id)
                    linked.append((target, link.representation))
                    frontier.append((target, link.representation))
    return Joined(entities, linked)


def _links(entity: dict[str, Any], rep: Representation, terms: TermMap) -> Iterator[_Link]:
    for name, value in entity.items():
        if name in _NOT_ATTRIBUTES:
            continue
        compact = terms.compact(name)
        if not rep.keeps(compact):
            continue
        for instance in value if isinstance(value, list) else [value]:
            if not isinstance(instance, dict):
                continue
            kind = instance.get("type")
            if kind == "Relationship":
                objects = instance.get("object")
                listed = isinstance(objects, list)
            elif kind == "ListRelationship":
                objects = instance.get("objectList")
                listed = True
            else:
                continue
            targets = [target for target in _object_ids(objects)]
            if targets:
                yield _Link(instance, targets, listed, rep.linked_via(compact))


def _object_ids(objects: Any) -> list[str]:
    items = objects if isinstance(objects, list) else [objects]
    ids: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("object")
        if isinstance(item, str):
            ids.append(item)
    return ids
