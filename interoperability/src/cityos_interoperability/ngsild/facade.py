"""What the NGSI-LD routes need from the knowledge layer's service facade.

ADR 0001: the API reaches the context store only through ``cityos_knowledge.service``.
This module states, as a typing ``Protocol``, the operations the routes call, so that the
routes are written and checked against one explicit contract and the layer can hand them
the facade object. Entities cross it in the expanded form
(:mod:`cityos_interoperability.ngsild.jsonld.expansion`); query parameters cross it raw,
with :attr:`EntityQuery.expand` to turn the client's terms into IRIs, because the facade's
query module parses ``q``, ``scopeQ``, ``georel`` and type expressions.

Domain errors of the facade declare their NGSI-LD ``problem_type`` and ``status``
(:func:`cityos_interoperability.ngsild.errors.translate_domain_error` maps them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

BatchOperation = Literal["create", "upsert", "update", "delete", "merge"]


@dataclass(frozen=True)
class EntityQuery:
    """One Query Entities / Purge request, parameters as the client sent them."""

    expand: Callable[[str], str]
    ids: Sequence[str] | None = None
    id_pattern: str | None = None
    type: str | None = None
    attrs: Sequence[str] | None = None  # expanded IRIs
    q: str | None = None
    scope_q: str | None = None
    georel: str | None = None
    geometry: str | None = None
    coordinates: str | None = None
    geoproperty: str | None = None
    order_by: str | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False
    sys_attrs: bool = False


@dataclass(frozen=True)
class EntityPage:
    """Entities (expanded form, system members when asked) and the total if counted."""

    entities: list[dict[str, Any]]
    total: int | None = None


@dataclass(frozen=True)
class AttributesOutcome:
    """Which attributes an append/update changed, and why the others were not."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class BatchOutcome:
    """Per-entity outcome of a batch operation: ids that succeeded, (id, error) that failed."""

    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, Exception]] = field(default_factory=list)


class KnowledgeFacade(Protocol):
    """The operations of ``cityos_knowledge.service`` the NGSI-LD API calls."""

    def create_entity(self, tenant: str | None, entity: dict[str, Any]) -> None: ...

    def retrieve_entity(
        self,
        tenant: str | None,
        entity_id: str,
        *,
        attrs: Sequence[str] | None = None,
        sys_attrs: bool = False,
    ) -> dict[str, Any]: ...

    def query_entities(self, tenant: str | None, query: EntityQuery) -> EntityPage: ...

    def replace_entity(self, tenant: str | None, entity: dict[str, Any]) -> None: ...

    def merge_entity(
        self, tenant: str | None, entity_id: str, fragment: dict[str, Any]
    ) -> None: ...

    def delete_entity(self, tenant: str | None, entity_id: str) -> None: ...

    def append_attributes(
        self,
        tenant: str | None,
        entity_id: str,
        fragment: dict[str, Any],
        *,
        overwrite: bool = True,
    ) -> AttributesOutcome: ...

    def update_attributes(
        self, tenant: str | None, entity_id: str, fragment: dict[str, Any]
    ) -> AttributesOutcome: ...

    def update_attribute(
        self, tenant: str | None, entity_id: str, name: str, fragment: dict[str, Any]
    ) -> None: ...

    def replace_attribute(
        self, tenant: str | None, entity_id: str, name: str, attribute: dict[str, Any]
    ) -> None: ...

    def delete_attribute(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> None: ...

    def batch(
        self,
        tenant: str | None,
        operation: BatchOperation,
        items: Sequence[dict[str, Any]],
        *,
        overwrite: bool = True,
    ) -> BatchOutcome: ...

    def purge_entities(self, tenant: str | None, query: EntityQuery) -> int: ...

    def entity_types(self, tenant: str | None) -> list[dict[str, Any]]:
        """``[{"type": IRI, "attributeNames": [IRI…], "entityCount": n}]``."""
        ...

    def attributes(self, tenant: str | None) -> list[dict[str, Any]]:
        """``[{"name": IRI, "attributeTypes": [...], "typeNames": [IRI…], "count": n}]``."""
        ...
