"""``/types`` and ``/attributes`` (GS CIM 009 5.7.5-5.7.10; 6.25-6.28): what the store holds."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cityos_interoperability.ngsild.access import ReadScope, facade_for
from cityos_interoperability.ngsild.api.common import request_terms
from cityos_interoperability.ngsild.api.entities import READ
from cityos_interoperability.ngsild.facade import AttributeSummary
from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.jsonld.expansion import check_name
from cityos_interoperability.ngsild.negotiation import JSON_REPRESENTATIONS, choose_representation
from cityos_interoperability.ngsild.responses import json_response
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep

DetailsParam = Annotated[bool, Query(description="Full information instead of names only")]


def build(services: ApiServices) -> APIRouter:
    router = APIRouter(route_class=services.route_class, tags=["Discovery"])

    async def respond(request: Request, terms: TermMap, body: Any) -> Response:
        media_type = choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        return json_response(body, media_type=media_type, terms=terms)

    # ``/types/`` and ``/attributes/`` would otherwise name an empty type or attribute
    # (the ``:path`` routes below): they are the lists, as without the slash.
    @router.get("/types/", include_in_schema=False, dependencies=READ)
    @router.get("/types", operation_id="retrieveEntityTypes", dependencies=READ)
    async def list_types(
        request: Request,
        tenant: TenantDep,
        scope: ReadScope,
        details: DetailsParam = False,
        local: bool = False,
    ) -> Response:
        """List the entity types present."""
        terms = await request_terms(services, request)
        types = await run_in_threadpool(facade_for(services, scope).entity_types, tenant)
        if details:
            body: Any = [
                {
                    "id": row.type_name,
                    "type": "EntityType",
                    "typeName": terms.compact(row.type_name),
                    "attributeNames": [terms.compact(n) for n in row.attribute_names],
                }
                for row in types
            ]
        else:
            body = {
                "id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}",
                "type": "EntityTypeList",
                "typeList": [terms.compact(row.type_name) for row in types],
            }
        return await respond(request, terms, body)

    # ``:path``: a type or attribute may be named by its full IRI, whose percent-encoded
    # slashes arrive decoded (``/types/https%3A%2F%2Fexample.org%2FBuilding``).
    @router.get("/types/{type:path}", operation_id="retrieveEntityTypeInfo", dependencies=READ)
    async def type_info(
        request: Request,
        type: str,
        tenant: TenantDep,
        scope: ReadScope,
        local: bool = False,
    ) -> Response:
        """Details of one entity type: how many entities, which attributes."""
        check_name(type, "entity type")
        terms = await request_terms(services, request)
        iri = terms.expand(type)
        info = await run_in_threadpool(facade_for(services, scope).entity_type, tenant, iri)
        body = {
            "id": info.type_name,
            "type": "EntityTypeInfo",
            "typeName": terms.compact(info.type_name),
            "entityCount": info.entity_count,
            "attributeDetails": [
                {
                    "id": attribute.name,
                    "type": "Attribute",
                    "attributeName": terms.compact(attribute.name),
                    "attributeTypes": attribute.attribute_types,
                }
                for attribute in info.attribute_details
            ],
        }
        return await respond(request, terms, body)

    @router.get("/attributes/", include_in_schema=False, dependencies=READ)
    @router.get("/attributes", operation_id="retrieveAttrTypes", dependencies=READ)
    async def list_attributes(
        request: Request,
        tenant: TenantDep,
        scope: ReadScope,
        details: DetailsParam = False,
        local: bool = False,
    ) -> Response:
        """List the attribute names present."""
        terms = await request_terms(services, request)
        rows = await run_in_threadpool(facade_for(services, scope).attributes, tenant)
        if details:
            body: Any = [_attribute(terms, row, with_count=False) for row in rows]
        else:
            body = {
                "id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}",
                "type": "AttributeList",
                "attributeList": [terms.compact(row.name) for row in rows],
            }
        return await respond(request, terms, body)

    @router.get("/attributes/{attrId:path}", operation_id="retrieveAttrTypeInfo", dependencies=READ)
    async def attribute_info(
        request: Request,
        attrId: str,  # noqa: N803
        tenant: TenantDep,
        scope: ReadScope,
        local: bool = False,
    ) -> Response:
        """Details of one attribute: how often, which attribute types, on which types."""
        check_name(attrId, "attribute name")
        terms = await request_terms(services, request)
        iri = terms.expand(attrId)
        row = await run_in_threadpool(facade_for(services, scope).attribute, tenant, iri)
        return await respond(request, terms, _attribute(terms, row, with_count=True))

    return router


def _attribute(terms: TermMap, row: AttributeSummary, *, with_count: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.name,
        "type": "Attribute",
        "attributeName": terms.compact(row.name),
        "attributeTypes": row.attribute_types,
        "typeNames": [terms.compact(t) for t in row.type_names],
    }
    if with_count:
        body["attributeCount"] = row.attribute_count
    return body
