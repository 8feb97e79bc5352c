"""Level-1 authorization on the NGSI-LD routes: the caller's data scope, applied by the facade.

A route that reads or writes entities takes the scope of the caller its permission admitted
(``scope: ReadScope``) and calls the knowledge facade through :func:`facade_for`, the facade
as that caller sees it: tenants, entity types and attributes outside the scope are filtered
in the facade's SQL (``cityos_knowledge.query.authorization``), and writes to types it may
not write are refused with 403. The permission is checked once per request: the scope
dependency reuses the route's own ``require(...)`` dependency.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cityos_interoperability.ngsild.api.common import facade_of
from cityos_interoperability.ngsild.facade import KnowledgeFacade
from cityos_interoperability.ngsild.services import ApiServices
from cityos_support.security import data_scope
from cityos_support.security.policy import DataScope

ReadScope = Annotated[DataScope, Depends(data_scope("entities:read"))]
WriteScope = Annotated[DataScope, Depends(data_scope("entities:write"))]
TemporalScope = Annotated[DataScope, Depends(data_scope("temporal:read"))]


def facade_for(services: ApiServices, scope: DataScope) -> KnowledgeFacade:
    """The knowledge facade as this caller sees it (503 when the process has none)."""
    return facade_of(services).scoped(scope)
