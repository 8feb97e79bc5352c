"""``/entities/{entityId}/attrs[/{attrId}]`` (GS CIM 009 5.6.2-5.6.5, 5.6.19; 6.6, 6.7)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cityos_interoperability.ngsild.access import WriteScope, facade_for
from cityos_interoperability.ngsild.api.common import check_entity_id, request_terms
from cityos_interoperability.ngsild.api.entities import ENTITY_BODY, WRITE
from cityos_interoperability.ngsild.body import read_document
from cityos_interoperability.ngsild.errors import BadRequestDataError
from cityos_interoperability.ngsild.facade import UpdateResult
from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.jsonld.expansion import Expander, check_name, is_uri
from cityos_interoperability.ngsild.negotiation import JSON, JSON_LD, MERGE_PATCH
from cityos_interoperability.ngsild.representation import parse_options
from cityos_interoperability.ngsild.responses import json_response, no_content
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep

#: PATCH bodies: JSON, JSON-LD or JSON merge-patch (6.3.4).
PATCH_TYPES = (JSON, JSON_LD, MERGE_PATCH)


def outcome_response(outcome: UpdateResult, terms: TermMap) -> Response:
    """204 when every attribute was changed, else 207 with updated / notUpdated (5.6.3)."""
    if not outcome.not_updated:
        return no_content()
    body = {
        "updated": [terms.compact(name) for name in outcome.updated],
        "notUpdated": [
            {"attributeName": terms.compact(item.attribute_name), "reason": item.reason}
            for item in outcome.not_updated
        ],
    }
    return json_response(body, media_type="application/json", terms=terms, status_code=207)


def _expanded(terms: TermMap, entity_type: str | None) -> str | None:
    """The ``type`` selector of an attribute write, expanded (None when absent)."""
    if entity_type is None:
        return None
    check_name(entity_type, "entity type")
    return terms.expand(entity_type)


def _not_scope(attr_id: str) -> None:
    """scope is an entity member: it can be deleted through the attribute path, not set."""
    if attr_id == "scope":
        raise BadRequestDataError("scope is not an attribute; update it with the entity")


def build(services: ApiServices) -> APIRouter:
    router = APIRouter(route_class=services.route_class, tags=["Entity attributes"])
    max_bytes = services.settings.max_request_bytes

    async def fragment_of(
        request: Request, *, allow_null: bool
    ) -> tuple[TermMap, dict[str, object]]:
        accepted = PATCH_TYPES if request.method == "PATCH" else (JSON, JSON_LD)
        document = await read_document(request, max_bytes=max_bytes, accepted=accepted)
        terms = await services.terms(document.context)
        return terms, Expander(terms, allow_null=allow_null).fragment(document.body)

    @router.post(
        "/entities/{entityId}/attrs",
        operation_id="appendAttrs",
        dependencies=WRITE,
        openapi_extra={"requestBody": ENTITY_BODY},
        responses={204: {"description": "All appended"}, 207: {"description": "Partly"}},
    )
    async def append_attributes(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
        options: str | None = None,
        type: str | None = None,
    ) -> Response:
        """Append attributes to an entity (options=noOverwrite keeps existing ones)."""
        check_entity_id(entityId)
        _, flags = parse_options(options, None, allowed=("noOverwrite",))
        terms, fragment = await fragment_of(request, allow_null=False)
        outcome = await run_in_threadpool(
            lambda: facade_for(services, scope).append_attributes(
                tenant,
                entityId,
                fragment,
                no_overwrite="noOverwrite" in flags,
                entity_type=_expanded(terms, type),
            )
        )
        return outcome_response(outcome, terms)

    @router.patch(
        "/entities/{entityId}/attrs",
        operation_id="updateAttrs",
        dependencies=WRITE,
        openapi_extra={"requestBody": ENTITY_BODY},
        responses={204: {"description": "All updated"}, 207: {"description": "Partly"}},
    )
    async def update_attributes(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
        type: str | None = None,
    ) -> Response:
        """Update existing attributes of an entity."""
        check_entity_id(entityId)
        terms, fragment = await fragment_of(request, allow_null=True)
        outcome = await run_in_threadpool(
            lambda: facade_for(services, scope).update_attributes(
                tenant, entityId, fragment, entity_type=_expanded(terms, type)
            )
        )
        return outcome_response(outcome, terms)

    @router.patch(
        "/entities/{entityId}/attrs/{attrId}",
        operation_id="partialAttrUpdate",
        status_code=204,
        dependencies=WRITE,
        openapi_extra={"requestBody": ENTITY_BODY},
    )
    async def update_attribute(
        request: Request,
        entityId: str,  # noqa: N803
        attrId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
        type: str | None = None,
    ) -> Response:
        """Partially update one attribute (only the members sent change)."""
        check_entity_id(entityId)
        check_name(attrId, "attribute name")
        _not_scope(attrId)
        document = await read_document(request, max_bytes=max_bytes, accepted=PATCH_TYPES)
        terms = await services.terms(document.context)
        if not isinstance(document.body, dict):
            raise BadRequestDataError("the attribute fragment must be a JSON object")
        name = terms.expand(attrId)
        body = {k: v for k, v in document.body.items() if k != "@context"}
        fragment = Expander(terms, partial=True).attribute(body, attrId)
        # Awaited on the event loop: the facade's group commit applies it on its own
        # thread, without a thread-pool hop per update (ADR 0055).
        await facade_for(services, scope).patch_attribute_async(
            tenant, entityId, name, fragment, entity_type=_expanded(terms, type)
        )
        return no_content()

    @router.put(
        "/entities/{entityId}/attrs/{attrId}",
        operation_id="replaceEntityAttr",
        status_code=204,
        dependencies=WRITE,
        openapi_extra={"requestBody": ENTITY_BODY},
    )
    async def replace_attribute(
        request: Request,
        entityId: str,  # noqa: N803
        attrId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
    ) -> Response:
        """Replace one attribute."""
        check_entity_id(entityId)
        check_name(attrId, "attribute name")
        _not_scope(attrId)
        document = await read_document(request, max_bytes=max_bytes)
        terms = await services.terms(document.context)
        name = terms.expand(attrId)
        body = document.body
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "@context"}
        attribute = Expander(terms).attribute(body, attrId)
        await run_in_threadpool(
            facade_for(services, scope).replace_attribute, tenant, entityId, name, attribute
        )
        return no_content()

    @router.delete(
        "/entities/{entityId}/attrs/{attrId}",
        operation_id="removeEntityAttr",
        status_code=204,
        dependencies=WRITE,
    )
    async def delete_attribute(
        request: Request,
        entityId: str,  # noqa: N803
        attrId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
        datasetId: str | None = None,  # noqa: N803
        deleteAll: bool = False,  # noqa: N803
        type: str | None = None,
    ) -> Response:
        """Delete one attribute (one datasetId, or every instance with deleteAll)."""
        check_entity_id(entityId)
        check_name(attrId, "attribute name")
        if datasetId is not None and not is_uri(datasetId):
            raise BadRequestDataError("datasetId must be a URI")
        terms = await request_terms(services, request)
        if attrId == "scope":
            await run_in_threadpool(
                lambda: facade_for(services, scope).delete_scope(
                    tenant, entityId, entity_type=_expanded(terms, type)
                )
            )
            return no_content()
        name = terms.expand(attrId)
        await run_in_threadpool(
            lambda: facade_for(services, scope).delete_attribute(
                tenant,
                entityId,
                name,
                dataset_id=datasetId,
                delete_all=deleteAll,
                entity_type=_expanded(terms, type),
            )
        )
        return no_content()

    @router.api_route(
        "/entities//attrs{rest:path}",
        methods=["POST", "PATCH", "PUT", "DELETE"],
        include_in_schema=False,
        dependencies=WRITE,
    )
    async def attribute_write_without_entity_id(rest: str) -> Response:
        """``/entities//attrs[/…]``: the entity id is empty, which is no URI (400, not 404)."""
        raise BadRequestDataError("the entity id in the path is empty")

    return router
