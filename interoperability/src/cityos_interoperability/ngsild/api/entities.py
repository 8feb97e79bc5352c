"""``/entities`` and ``/entities/{entityId}`` (GS CIM 009 5.6, 5.7; 6.4, 6.5).

Each route: parse and check the request (media type, @context, representation options),
expand the body with the request's @context, call the knowledge facade in a worker thread
(it is blocking: SQLAlchemy on psycopg2), render the result. Attribute routes live in
:mod:`.attributes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cityos_interoperability.ngsild.access import ReadScope, WriteScope, facade_for
from cityos_interoperability.ngsild.api.common import (
    AttrsParam,
    DatasetIdParam,
    FormatParam,
    GeometryPropertyParam,
    JoinLevelParam,
    JoinParam,
    LangParam,
    OmitParam,
    OptionsParam,
    PickParam,
    answer_query,
    check_entity_id,
    dataset_ids,
    entity_media_type,
    entity_query,
    expand_attrs,
    join_found,
    projected,
    render_entities,
    request_terms,
    selections,
    top_level,
)
from cityos_interoperability.ngsild.api.query_body import check_collation
from cityos_interoperability.ngsild.body import read_document
from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    InvalidRequestError,
    ResourceNotFoundError,
)
from cityos_interoperability.ngsild.facade import EntityQuery, parse_query
from cityos_interoperability.ngsild.jsonld.expansion import Expander
from cityos_interoperability.ngsild.linked import Joined
from cityos_interoperability.ngsild.negotiation import JSON, JSON_LD, MERGE_PATCH
from cityos_interoperability.ngsild.projection import check_join
from cityos_interoperability.ngsild.responses import no_content
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep
from cityos_support.security import require

ENTITY_BODY = {
    "required": True,
    "content": {
        JSON: {"schema": {"type": "object"}},
        JSON_LD: {"schema": {"type": "object", "required": ["@context"]}},
    },
}
MERGE_BODY = {
    "required": True,
    "content": {**ENTITY_BODY["content"], MERGE_PATCH: {"schema": {"type": "object"}}},  # type: ignore[dict-item]
}

READ = [Depends(require("entities:read"))]
#: Characters a URI keeps unescaped in a Location header.
URI_SAFE = ":/?#[]@!$&'()*+,;=-._~"
WRITE = [Depends(require("entities:write"))]


def build(services: ApiServices) -> APIRouter:
    router = APIRouter(route_class=services.route_class, tags=["Entities"])
    settings = services.settings

    @router.post(
        "/entities",
        operation_id="createEntity",
        status_code=201,
        dependencies=WRITE,
        openapi_extra={"requestBody": ENTITY_BODY},
        responses={201: {"description": "Created; Location names the entity"}},
    )
    async def create_entity(request: Request, tenant: TenantDep, scope: WriteScope) -> Response:
        """Create an entity."""
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        if not isinstance(document.body, dict):
            # Not an entity at all (e.g. ``[]``): the request is malformed, not its data.
            raise InvalidRequestError("the body of Create Entity must be a JSON object")
        terms = await services.terms(document.context)
        entity = Expander(terms).entity(document.body)
        await run_in_threadpool(facade_for(services, scope).create_entity, tenant, entity)
        location = "/ngsi-ld/v1/entities/" + quote(entity["id"], safe=URI_SAFE)
        return Response(status_code=201, headers={"Location": location})

    @router.get("/entities", operation_id="queryEntities", dependencies=READ)
    async def query_entities(
        request: Request,
        tenant: TenantDep,
        scope: ReadScope,
        id: str | None = None,
        idPattern: str | None = None,  # noqa: N803
        type: str | None = None,
        attrs: AttrsParam = None,
        q: str | None = None,
        scopeQ: str | None = None,  # noqa: N803
        georel: str | None = None,
        geometry: str | None = None,
        coordinates: str | None = None,
        geoproperty: str | None = None,
        geometry_property: GeometryPropertyParam = None,
        options: OptionsParam = None,
        format: FormatParam = None,
        pick: PickParam = None,
        omit: OmitParam = None,
        lang: LangParam = None,
        join: JoinParam = None,
        join_level: JoinLevelParam = None,
        order_by: Annotated[str | None, Query(alias="orderBy")] = None,
        order_from: Annotated[str | None, Query(alias="orderFrom")] = None,
        collation: str | None = None,
        csf: Annotated[str | None, Query(description="Context source filter (4.9 syntax)")] = None,
        dataset_id: DatasetIdParam = None,
        limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        count: bool = False,
        local: bool | None = None,
    ) -> Response:
        """Query entities by id, type, attributes, q, scope and geometry."""
        media_type = entity_media_type(request)
        chosen = selections(pick, omit, attrs)
        rep = projected(options, format, lang, chosen)
        active_join, level = check_join(join, join_level, *chosen)
        check_collation(collation)
        if csf is not None:
            # csf selects the context sources a query is forwarded to (5.7.2.4); this broker
            # registers none, so it only has to be well formed.
            parse_query({"q": csf}, max_limit=settings.max_page_size)
        datasets = dataset_ids(dataset_id)
        terms = await request_terms(services, request)
        query = entity_query(settings, top_level(request.query_params))
        check_query_scope(query, type, georel, local)
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
            with_page_links=True,
        )

    @router.delete("/entities", operation_id="purgeEntities", status_code=204, dependencies=WRITE)
    async def purge_entities(
        request: Request,
        tenant: TenantDep,
        scope: WriteScope,
        id: str | None = None,
        idPattern: str | None = None,  # noqa: N803
        type: str | None = None,
        attrs: AttrsParam = None,
        q: str | None = None,
        scopeQ: str | None = None,  # noqa: N803
        georel: str | None = None,
        geometry: str | None = None,
        coordinates: str | None = None,
        geoproperty: str | None = None,
        keep: str | None = None,
        drop: str | None = None,
        local: bool = False,
    ) -> Response:
        """Delete every entity matching the filters, or only attributes of them (purge)."""
        if keep is not None and drop is not None:
            raise BadRequestDataError("purge takes keep or drop, not both")
        if attrs is not None and "{" in attrs:
            raise BadRequestDataError("purge cannot project linked entities (attrs)")
        query = entity_query(settings, request.query_params)
        if not (local or purge_is_restricted(query, georel)):
            raise BadRequestDataError(
                "purge needs type, a non-system attribute in attrs or q, georel, scopeQ "
                "or local=true"
            )
        terms = await request_terms(services, request)
        facade = facade_for(services, scope)
        await run_in_threadpool(
            lambda: facade.purge_entities(
                tenant,
                query,
                expand=terms.expand,
                keep=_names(keep),
                drop=_names(drop),
            )
        )
        return no_content()

    @router.get("/entities/{entityId}", operation_id="retrieveEntity", dependencies=READ)
    async def retrieve_entity(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: ReadScope,
        attrs: AttrsParam = None,
        type: str | None = None,
        geometry_property: GeometryPropertyParam = None,
        options: OptionsParam = None,
        format: FormatParam = None,
        pick: PickParam = None,
        omit: OmitParam = None,
        lang: LangParam = None,
        join: JoinParam = None,
        join_level: JoinLevelParam = None,
        dataset_id: DatasetIdParam = None,
        local: bool = False,
    ) -> Response:
        """Retrieve one entity."""
        check_entity_id(entityId)
        media_type = entity_media_type(request)
        chosen = selections(pick, omit, attrs)
        rep = projected(options, format, lang, chosen)
        active_join, level = check_join(join, join_level, *chosen)
        datasets = dataset_ids(dataset_id)
        terms = await request_terms(services, request)
        facade = facade_for(services, scope)

        def read() -> Joined:
            entity = facade.retrieve_entity(
                tenant, entityId, attrs=expand_attrs(terms, chosen[2]), sys_attrs=rep.sys_attrs
            )
            if type is not None and not has_types(entity, type, terms.expand):
                raise ResourceNotFoundError(f"entity {entityId} is not of type {type}")
            if chosen[2] is not None and not set(entity) - NOT_ATTRIBUTES:
                # 5.7.1.4: the entity has none of the attributes asked for.
                raise ResourceNotFoundError(f"entity {entityId} has none of the attributes {attrs}")
            return join_found(
                facade,
                tenant,
                [entity],
                terms,
                rep,
                datasets=datasets,
                join=active_join,
                level=level,
            )

        joined = await run_in_threadpool(read)
        return await render_entities(
            request,
            media_type,
            terms,
            rep,
            joined.entities,
            single=True,
            geometry_property=geometry_property,
            linked=joined.linked,
        )

    @router.put(
        "/entities/{entityId}",
        operation_id="replaceEntity",
        status_code=204,
        dependencies=WRITE,
        openapi_extra={"requestBody": ENTITY_BODY},
    )
    async def replace_entity(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
    ) -> Response:
        """Replace an entity with the one in the body."""
        check_entity_id(entityId)
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        terms = await services.terms(document.context)
        body = document.body
        if isinstance(body, dict) and body.get("id", entityId) != entityId:
            raise BadRequestDataError("the body's id differs from the entity id in the URL")
        entity = Expander(terms).entity(
            {**body, "id": entityId} if isinstance(body, dict) else body
        )
        await run_in_threadpool(
            facade_for(services, scope).replace_entity, tenant, entityId, entity
        )
        return no_content()

    @router.patch(
        "/entities/{entityId}",
        operation_id="mergeEntity",
        status_code=204,
        dependencies=WRITE,
        openapi_extra={"requestBody": MERGE_BODY},
    )
    async def merge_entity(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
    ) -> Response:
        """Merge the body into an entity (merge-patch)."""
        check_entity_id(entityId)
        document = await read_document(
            request, max_bytes=settings.max_request_bytes, accepted=(JSON, JSON_LD, MERGE_PATCH)
        )
        terms = await services.terms(document.context)
        body = document.body
        if isinstance(body, dict) and body.get("id", entityId) != entityId:
            raise BadRequestDataError("the body's id differs from the entity id in the URL")
        fragment = Expander(terms, partial=True).fragment(body)
        await run_in_threadpool(
            facade_for(services, scope).merge_entity, tenant, entityId, fragment
        )
        return no_content()

    @router.delete(
        "/entities/{entityId}", operation_id="deleteEntity", status_code=204, dependencies=WRITE
    )
    async def delete_entity(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
        type: str | None = None,
        local: bool = False,
    ) -> Response:
        """Delete an entity."""
        check_entity_id(entityId)
        facade = facade_for(services, scope)
        if type is not None:
            # 5.6.6.4: with a type selector, an entity of another type is not found.
            terms = await request_terms(services, request)

            def delete_if_typed() -> None:
                entity = facade.retrieve_entity(tenant, entityId, attrs=[])
                if not has_types(entity, type, terms.expand):
                    raise ResourceNotFoundError(f"entity {entityId} is not of type {type}")
                facade.delete_entity(tenant, entityId)

            await run_in_threadpool(delete_if_typed)
            return no_content()
        await run_in_threadpool(facade.delete_entity, tenant, entityId)
        return no_content()

    # ``/entities/`` is redirected here: PUT or PATCH without an entity id is a bad request
    # (5.6.17.4, 5.6.18.4), not a method the collection lacks (405).
    @router.put("/entities", include_in_schema=False, dependencies=WRITE)
    @router.patch("/entities", include_in_schema=False, dependencies=WRITE)
    async def write_without_id() -> Response:
        """Replace or merge without an entity id in the path."""
        raise BadRequestDataError("the path names no entity: /entities/{entityId}")

    return router


#: Members of a stored entity that are not attributes.
NOT_ATTRIBUTES = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "@context"})
#: Attributes the broker maintains; a purge filter must name at least one other (5.6.21.4).
SYSTEM_ATTRIBUTES = frozenset({"createdAt", "modifiedAt", "deletedAt"})


def purge_is_restricted(query: EntityQuery, georel: str | None) -> bool:
    """Whether a purge's filters are narrow enough without local=true (5.6.21.4).

    id and idPattern alone do not qualify, nor do attrs or q over system attributes only.
    """
    return bool(
        query.types is not None
        or set(query.attrs) - SYSTEM_ATTRIBUTES
        or query.q_attributes - SYSTEM_ATTRIBUTES
        or georel
        or query.scope_q is not None
    )


def check_query_scope(
    query: EntityQuery, type_text: str | None, georel: str | None, local: bool | None
) -> None:
    """5.7.2.4: a query needs a type, attrs, q, geo or scope filter, or local=true (400).

    ``id``/``idPattern`` alone do not qualify, nor do attrs or q over system attributes
    only; ``type=*`` (every type, 4.17) qualifies but not with an explicit ``local=false``.
    """
    if type_text == "*":
        if local is False:
            raise BadRequestDataError("type=* (every type) cannot be used with local=false")
        return
    if not (local or purge_is_restricted(query, georel)):
        raise BadRequestDataError(
            "Query Entities needs type, attrs, q, georel or scopeQ (or local=true): "
            "the query is too wide"
        )


def has_types(entity: Mapping[str, Any], selection: str, expand: Callable[[str], str]) -> bool:
    """Whether ``entity`` matches a ``type`` selector: ``,``/``|`` any of, ``;`` all of."""
    held = entity.get("type")
    types = set(held if isinstance(held, list) else [held])
    alternatives = selection.replace("|", ",").split(",")
    return any(
        all(expand(name.strip().strip("()")) in types for name in alternative.split(";"))
        for alternative in alternatives
        if alternative.strip()
    )


def _names(text: str | None) -> list[str] | None:
    """A comma-separated attribute list (keep/drop), None when absent."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BadRequestDataError("keep/drop must name at least one attribute")
    return names
