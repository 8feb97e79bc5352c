"""The knowledge layer's service facade, as the NGSI-LD routes use it.

ADR 0001: ``cityos_knowledge.service`` is the only knowledge module this layer imports.
Entities cross it in the expanded form (:mod:`cityos_interoperability.ngsild.jsonld.expansion`);
query parameters cross it as the client wrote them, parsed by the facade's query module, with
the request's term expansion (``expand``) turning names into IRIs. Its domain errors carry
their NGSI-LD ``problem_type`` and ``status``
(:func:`cityos_interoperability.ngsild.errors.translate_domain_error`).
"""

from __future__ import annotations

from collections.abc import Mapping

from cityos_knowledge.service import (
    AttributeSummary,
    BatchResult,
    EntityPage,
    EntityQuery,
    KnowledgeService,
    NonexistentTenantError,
    UpdateResult,
    parse_entity_query,
)

#: The facade object the routes receive (one per process, its own connection pool).
KnowledgeFacade = KnowledgeService

__all__ = [
    "AttributeSummary",
    "BatchResult",
    "EntityPage",
    "EntityQuery",
    "KnowledgeFacade",
    "NonexistentTenantError",
    "UpdateResult",
    "parse_query",
]

#: Query Entities parameters the facade's query module parses.
QUERY_PARAMETERS = (
    "id",
    "idPattern",
    "type",
    "attrs",
    "q",
    "scopeQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "pick",
    "omit",
    "orderBy",
    "orderFrom",
    "limit",
    "offset",
    "count",
)


def parse_query(parameters: Mapping[str, str], *, max_limit: int) -> EntityQuery:
    """Parse Query Entities parameters (only the ones the query module knows are read)."""
    wanted = {name: value for name, value in parameters.items() if name in QUERY_PARAMETERS}
    return parse_entity_query(wanted, max_limit=max_limit)
