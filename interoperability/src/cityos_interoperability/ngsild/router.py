"""Assembles the NGSI-LD API: one router at ``/ngsi-ld/v1`` built from the route modules."""

from __future__ import annotations

from fastapi import APIRouter

from cityos_interoperability.ngsild.api import (
    attributes,
    batch,
    contexts,
    discovery,
    entities,
    identity,
    temporal,
)
from cityos_interoperability.ngsild.services import ApiServices

PREFIX = "/ngsi-ld/v1"


def build_router(services: ApiServices) -> APIRouter:
    """The ``/ngsi-ld/v1`` router with every resource's routes."""
    router = APIRouter(prefix=PREFIX, route_class=services.route_class)
    for module in (entities, attributes, batch, discovery, contexts, identity, temporal):
        router.include_router(module.build(services))
    return router
