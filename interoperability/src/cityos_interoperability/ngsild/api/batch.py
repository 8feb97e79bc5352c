"""``/entityOperations/*`` (GS CIM 009 5.6.7-5.6.10, 5.6.20, 5.7.2; 6.14-6.17, 6.31, 6.23).

Every entity of a batch is checked on its own: one that cannot be expanded (bad shape, an
@context that cannot be fetched) is reported in ``errors`` with its ProblemDetails while the
others go to the facade. The answer is 201 (create, all new) or 204 (all done) when nothing
failed, else 207 with ``{"success": [ids], "errors": [{"entityId", "error"}]}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cityos_interoperability.ngsild.access import ReadScope, WriteScope, facade_for
from cityos_interoperability.ngsild.api.common import (
    FormatParam,
    GeometryPropertyParam,
    LangParam,
    OmitParam,
    OptionsParam,
    PickParam,
    answer_query,
    dataset_ids,
    entity_media_type,
    entity_query,
    projected,
    selections,
    top_level,
)
from cityos_interoperability.ngsild.api.entities import READ, WRITE, check_query_scope
from cityos_interoperability.ngsild.api.query_body import query_parameters
from cityos_interoperability.ngsild.body import read_document
from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    NgsiLdError,
    translate_domain_error,
)
from cityos_interoperability.ngsild.facade import (
    BatchResult,
    NonexistentTenantError,
    parse_query,
)
from cityos_interoperability.ngsild.jsonld.context import ContextValue
from cityos_interoperability.ngsild.jsonld.expansion import Expander, is_uri
from cityos_interoperability.ngsild.negotiation import JSON, JSON_LD, context_from_link_header
from cityos_interoperability.ngsild.projection import check_join
from cityos_interoperability.ngsild.representation import parse_options
from cityos_interoperability.ngsild.responses import no_content
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep
from cityos_support.security.policy import DataScope

BATCH_BODY = {
    "required": True,
    "content": {
        media_type: {"schema": {"type": "array", "items": {"type": "object"}}}
        for media_type in (JSON, JSON_LD)
    },
}
QUERY_BODY = {
    "required": True,
    "content": {
        media_type: {"schema": {"type": "object", "required": ["type"]}}
        for media_type in (JSON, JSON_LD)
    },
}
DELETE_BODY = {
    "required": True,
    "content": {JSON: {"schema": {"type": "array", "items": {"type": "string"}}}},
}


def _problem(error: Exception) -> dict[str, Any]:
    if isinstance(error, NgsiLdError):
        return error.problem()
    translated = translate_domain_error(error)
    if translated is not None:
        return translated.problem()
    return {
        "type": "https://uri.etsi.org/ngsi-ld/errors/InternalError",
        "title": "Internal error",
        "status": 500,
        "detail": type(error).__name__,
    }


BatchOperation = Literal["create", "upsert", "update", "delete", "merge"]


@dataclass(frozen=True)
class BatchItem:
    """One entity of a batch body, the @context to expand it with, or why it is refused."""

    entity: dict[str, Any]
    context: ContextValue | None
    problem: NgsiLdError | None = None


def batch_response(
    outcome: BatchResult, rejected: list[tuple[str, Exception]], *, created: bool
) -> Response:
    errors = [*rejected, *((e.entity_id or "", e.error) for e in outcome.errors)]
    if not errors:
        if created:
            return Response(orjson.dumps(outcome.success), status_code=201, media_type=JSON)
        return no_content()
    body = {
        "success": outcome.success,
        "errors": [
            {"entityId": entity_id, "error": _problem(error)} for entity_id, error in errors
        ],
    }
    return Response(orjson.dumps(body), status_code=207, media_type=JSON)


def build(services: ApiServices) -> APIRouter:
    router = APIRouter(route_class=services.route_class, tags=["Batch operations"])
    settings = services.settings

    async def read_batch(request: Request) -> list[BatchItem]:
        """The items of a batch body, each with its @context or what is wrong with it.

        6.3.5 applies per entity (5.6.7.4): an item with an @context sent as JSON, or
        without one sent as JSON-LD, is reported in ``errors`` while the others proceed.
        A body that is not an array of objects, or JSON-LD with a Link header, is refused.
        """
        document = await read_document(
            request, max_bytes=settings.max_request_bytes, carries_context=False
        )
        body = document.body
        if not isinstance(body, list) or not body:
            raise BadRequestDataError("a batch body must be a non-empty JSON array")
        if not all(isinstance(item, dict) for item in body):
            raise BadRequestDataError("every item of a batch body must be an entity object")
        if len(body) > settings.max_batch_entities:
            raise BadRequestDataError(
                f"a batch may carry at most {settings.max_batch_entities} entities"
            )
        link = context_from_link_header(request.headers.get("link"))
        if document.media_type == JSON_LD:
            if link is not None:
                raise BadRequestDataError(
                    "a JSON-LD body carries its @context; a Link header is not allowed with it"
                )
            return [
                BatchItem(item, item.get("@context"))
                if "@context" in item
                else BatchItem(item, None, BadRequestDataError("the entity has no @context"))
                for item in body
            ]
        return [
            BatchItem(
                item,
                link,
                BadRequestDataError("an entity sent as application/json has an @context")
                if "@context" in item
                else None,
            )
            for item in body
        ]

    async def expand_all(
        items: list[BatchItem], *, partial: bool
    ) -> tuple[list[dict[str, Any]], list[tuple[str, Exception]]]:
        accepted: list[dict[str, Any]] = []
        rejected: list[tuple[str, Exception]] = []
        for item in items:
            entity_id = str(item.entity.get("id", ""))
            try:
                if item.problem is not None:
                    raise item.problem
                terms = await services.terms(item.context)
                accepted.append(
                    Expander(terms, partial=partial).entity(item.entity, require_type=not partial)
                )
            except NgsiLdError as error:
                rejected.append((entity_id, error))
        return accepted, rejected

    async def run(
        tenant: str | None,
        scope: DataScope,
        operation: BatchOperation,
        items: list[Any],
        flags: set[str],
    ) -> BatchResult:
        if not items:
            return BatchResult()
        facade = facade_for(services, scope)
        calls: dict[BatchOperation, Callable[[], BatchResult]] = {
            "create": lambda: facade.batch_create(tenant, items),
            "upsert": lambda: facade.batch_upsert(tenant, items, replace="update" not in flags),
            "update": lambda: facade.batch_update(
                tenant, items, no_overwrite="noOverwrite" in flags
            ),
            "merge": lambda: facade.batch_merge(tenant, items),
            "delete": lambda: facade.batch_delete(tenant, items),
        }
        return await run_in_threadpool(calls[operation])

    async def existing_ids(tenant: str | None, scope: DataScope, ids: list[str]) -> set[str]:
        """Which of ``ids`` already exist (an upsert answers 201 only for new ones)."""
        if not ids:
            return set()
        query = parse_query(
            {"id": ",".join(ids), "pick": "id", "limit": str(len(ids))}, max_limit=len(ids)
        )
        facade = facade_for(services, scope)
        try:
            page = await run_in_threadpool(lambda: facade.query_entities(tenant, query))
        except NonexistentTenantError:
            return set()
        return {str(entity["id"]) for entity in page.entities}

    def operation_route(
        operation: Literal["create", "upsert", "update", "merge"], summary: str
    ) -> None:
        async def handler(
            request: Request, tenant: TenantDep, scope: WriteScope, options: str | None = None
        ) -> Response:
            _, flags = parse_options(options, None, allowed=("replace", "update", "noOverwrite"))
            entities, rejected = await expand_all(
                await read_batch(request), partial=operation in ("update", "merge")
            )
            if operation != "upsert":
                outcome = await run(tenant, scope, operation, entities, flags)
                return batch_response(outcome, rejected, created=operation == "create")
            existing = await existing_ids(tenant, scope, [str(e.get("id")) for e in entities])
            outcome = await run(tenant, scope, operation, entities, flags)
            if outcome.errors or rejected:
                return batch_response(outcome, rejected, created=False)
            # 201 with the ids of the entities it created, 204 when it only replaced.
            # An id upserted twice in one batch is one entity: listed once (5.6.8, 5.5.11).
            created = list(dict.fromkeys(i for i in outcome.success if i not in existing))
            outcome = BatchResult(success=created, errors=outcome.errors)
            return batch_response(outcome, rejected, created=bool(created))

        handler.__doc__ = summary
        router.add_api_route(
            f"/entityOperations/{operation}",
            handler,
            methods=["POST"],
            operation_id=f"batchEntity{operation.capitalize()}",
            dependencies=WRITE,
            openapi_extra={"requestBody": BATCH_BODY},
            responses={207: {"description": "Some entities failed: success and errors arrays"}},
            name=f"batch_{operation}",
        )

    operation_route("create", "Create several entities.")
    operation_route("upsert", "Create or replace (options=update: update) several entities.")
    operation_route("update", "Update attributes of several entities.")
    operation_route("merge", "Merge several entities (merge-patch).")

    @router.post(
        "/entityOperations/delete",
        operation_id="batchEntityDelete",
        dependencies=WRITE,
        openapi_extra={"requestBody": DELETE_BODY},
        responses={207: {"description": "Some entities failed: success and errors arrays"}},
    )
    async def batch_delete(request: Request, tenant: TenantDep, scope: WriteScope) -> Response:
        """Delete several entities by id."""
        # An array of ids has no member an @context could name: none is needed as JSON-LD.
        document = await read_document(
            request,
            max_bytes=settings.max_request_bytes,
            accepted=(JSON, JSON_LD),
            carries_context=False,
        )
        ids = document.body
        if not isinstance(ids, list) or not ids:
            raise BadRequestDataError("the body must be a non-empty array of entity ids")
        good = [item for item in ids if is_uri(item)]
        rejected: list[tuple[str, Exception]] = [
            (str(item), BadRequestDataError(f"{item!r} is not an entity id"))
            for item in ids
            if not is_uri(item)
        ]
        outcome = await run(tenant, scope, "delete", good, set())
        return batch_response(outcome, rejected, created=False)

    @router.post(
        "/entityOperations/query",
        operation_id="queryBatch",
        dependencies=READ,
        openapi_extra={"requestBody": QUERY_BODY},
    )
    async def batch_query(
        request: Request,
        tenant: TenantDep,
        scope: ReadScope,
        options: OptionsParam = None,
        format: FormatParam = None,
        pick: PickParam = None,
        omit: OmitParam = None,
        lang: LangParam = None,
        geometry_property: GeometryPropertyParam = None,
        limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        count: bool = False,
        local: bool | None = None,
    ) -> Response:
        """Query entities with the filters in a Query body (POST form of GET /entities)."""
        media_type = entity_media_type(request)
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        found = query_parameters(document.body)
        chosen = selections(found.get("pick", pick), found.get("omit", omit), found.get("attrs"))
        rep = projected(options, format, found.get("lang", lang), chosen)
        active_join, level = check_join(found.get("join"), found.get("joinLevel"), *chosen)
        terms = await services.terms(document.context)
        parameters = {
            name: value for name, value in request.query_params.items() if name != "options"
        }
        parameters.update(found)
        query = entity_query(settings, top_level(parameters))
        check_query_scope(query, found.get("type"), found.get("georel"), local)
        datasets = dataset_ids(found.get("datasetId"))
        facade = facade_for(services, scope)

        return await answer_query(
            request,
            media_type,
            facade,
            tenant,
            query,
            terms,
            rep,
            datasets=datasets,
            join=active_join,
            level=level,
            count=count,
            geometry_property=geometry_property,
            with_page_links=False,
        )

    return router
