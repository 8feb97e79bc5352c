"""``/jsonldContexts`` (GS CIM 009 5.13, 6.29-6.30): list, serve, add and delete @contexts.

Three kinds: **Hosted** (added by clients with POST, stored per tenant, served from
``/ngsi-ld/v1/jsonldContexts/{id}``), **Cached** (remote contexts the broker fetched while
serving requests, identified by their URL) and the bundled core contexts (listed as
Cached, never deletable).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cityos_interoperability.ngsild.body import read_document
from cityos_interoperability.ngsild.errors import BadRequestDataError, ResourceNotFoundError
from cityos_interoperability.ngsild.jsonld.documents import (
    CORE_CONTEXT_URLS,
    bundled_document,
    is_core_context,
)
from cityos_interoperability.ngsild.negotiation import (
    JSON,
    JSON_LD,
    JSON_REPRESENTATIONS,
    choose_representation,
)
from cityos_interoperability.ngsild.responses import no_content
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep
from cityos_interoperability.store.contexts import HOSTED_PATH, HostedContext
from cityos_support.security import require

ContextKind = Literal["Hosted", "Cached", "ImplicitlyCreated"]

_BODY_SCHEMA = {
    "required": True,
    "content": {
        JSON: {"schema": {"type": "object", "required": ["@context"]}},
        JSON_LD: {"schema": {"type": "object", "required": ["@context"]}},
    },
}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _json(content: Any, status_code: int = 200, media_type: str = JSON) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type=media_type)


def build(services: ApiServices) -> APIRouter:
    router = APIRouter(route_class=services.route_class, tags=["JSON-LD @contexts"])

    def hosted_url(request: Request, context_id: str) -> str:
        return str(request.base_url).rstrip("/") + HOSTED_PATH + context_id

    def details(request: Request, hosted: HostedContext) -> dict[str, Any]:
        return {
            "URL": hosted_url(request, hosted.id),
            "localId": hosted.id,
            "kind": "Hosted",
            "createdAt": _iso(hosted.created_at),
            "numberOfHits": hosted.hits,
            **({"lastUsage": _iso(hosted.last_used_at)} if hosted.last_used_at else {}),
        }

    @router.get(
        "/jsonldContexts",
        operation_id="listJsonldContexts",
        dependencies=[Depends(require("contexts:read"))],
    )
    async def list_contexts(
        request: Request,
        tenant: TenantDep,
        details_: Annotated[bool, Query(alias="details")] = False,
        kind: ContextKind | None = None,
    ) -> Response:
        """List the @contexts the broker hosts or has cached."""
        entries: list[dict[str, Any]] = []
        if kind in (None, "Hosted") and services.hosted_contexts is not None:
            hosted = await run_in_threadpool(services.hosted_contexts.list, tenant)
            entries.extend(details(request, item) for item in hosted)
        if kind in (None, "Cached"):
            for url in [*CORE_CONTEXT_URLS, *services.loader.cached_urls()]:
                entries.append({"URL": url, "localId": url, "kind": "Cached"})
        if details_:
            return _json(entries)
        return _json([entry["URL"] for entry in entries])

    @router.post(
        "/jsonldContexts",
        operation_id="addJsonldContext",
        status_code=201,
        dependencies=[Depends(require("contexts:write"))],
        openapi_extra={"requestBody": _BODY_SCHEMA},
        responses={201: {"description": "Created; Location names the hosted @context"}},
    )
    async def add_context(request: Request, tenant: TenantDep) -> Response:
        """Host a client's @context at a URL of the broker."""
        document = await read_document(
            request,
            max_bytes=services.settings.max_request_bytes,
            accepted=(JSON, JSON_LD),
            carries_context=False,
        )
        body = document.body
        if not isinstance(body, dict) or not isinstance(body.get("@context"), dict | list):
            raise BadRequestDataError("the body must be a JSON object whose @context is an object")
        if set(body) != {"@context"}:
            raise BadRequestDataError("the body must contain only an @context member")
        await services.terms(body["@context"])  # refuse a context that cannot be processed
        store = services.require_hosted_contexts()
        hosted = await run_in_threadpool(store.add, tenant, body)
        return Response(status_code=201, headers={"Location": hosted_url(request, hosted.id)})

    @router.get(
        "/jsonldContexts/{contextId:path}",
        operation_id="serveJsonldContext",
        dependencies=[Depends(require("contexts:read"))],
    )
    async def serve_context(
        request: Request,
        contextId: str,  # noqa: N803 - the spec's name, shown in the OpenAPI document
        tenant: TenantDep,
        details_: Annotated[bool, Query(alias="details")] = False,
    ) -> Response:
        """Serve one @context (or its details) by local id or URL."""
        media_type = choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        if is_core_context(contextId):
            if details_:
                return _json({"URL": contextId, "localId": contextId, "kind": "Cached"})
            return _json(bundled_document(contextId), media_type=media_type)
        if services.hosted_contexts is not None:
            hosted = await run_in_threadpool(services.hosted_contexts.get, tenant, contextId)
            if hosted is not None:
                if details_:
                    return _json(details(request, hosted))
                return _json(hosted.document, media_type=media_type)
        cached = services.loader.cached_document(contextId)
        if cached is not None:
            if details_:
                return _json({"URL": contextId, "localId": contextId, "kind": "Cached"})
            return _json(cached, media_type=media_type)
        raise ResourceNotFoundError(f"no @context {contextId!r} is hosted or cached")

    @router.delete(
        "/jsonldContexts/{contextId:path}",
        operation_id="deleteJsonldContext",
        status_code=204,
        dependencies=[Depends(require("contexts:write"))],
    )
    async def delete_context(
        contextId: str,  # noqa: N803
        tenant: TenantDep,
        reload: bool = False,
    ) -> Response:
        """Delete a hosted @context, or drop (or reload) a cached one."""
        if is_core_context(contextId):
            raise BadRequestDataError("the core @context cannot be deleted or reloaded")
        if services.hosted_contexts is not None and not reload:
            removed = await run_in_threadpool(services.hosted_contexts.delete, tenant, contextId)
            if removed:
                services.resolver.forget()
                return no_content()
        if services.loader.cached_document(contextId) is not None:
            if reload:
                await run_in_threadpool(services.loader.reload, contextId)
            else:
                services.loader.evict(contextId)
            services.resolver.forget()
            return no_content()
        if reload:
            raise BadRequestDataError(f"{contextId!r} is not a cached @context; only those reload")
        raise ResourceNotFoundError(f"no @context {contextId!r} is hosted or cached")

    return router
