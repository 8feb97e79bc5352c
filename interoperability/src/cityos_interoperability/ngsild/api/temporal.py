"""The temporal API (GS CIM 009 5.6.11-5.6.16, 5.7.3-5.7.4; 6.18-6.24).

``/temporal/entities`` (query, create or add instances), ``/temporal/entities/{entityId}``
(retrieve, delete), its attributes and attribute instances, and
``/temporal/entityOperations/query``. The knowledge facade filters, windows, samples
(``lastN``) and aggregates in SQL; this module parses and expands the request, caps the
instances per attribute with the spec's 206 / ``Content-Range`` answer
(:mod:`cityos_interoperability.temporal.paging`) and compacts the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from cityos_interoperability.ngsild.access import TemporalScope, WriteScope, facade_for
from cityos_interoperability.ngsild.api.common import (
    AttrsParam,
    FormatParam,
    LangParam,
    OmitParam,
    OptionsParam,
    PickParam,
    check_entity_id,
    entity_query,
    expand_attrs,
    request_terms,
)
from cityos_interoperability.ngsild.body import read_document
from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    InvalidRequestError,
    ResourceNotFoundError,
)
from cityos_interoperability.ngsild.facade import parse_query
from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.jsonld.expansion import check_name
from cityos_interoperability.ngsild.negotiation import (
    JSON,
    JSON_LD,
    JSON_REPRESENTATIONS,
    choose_representation,
)
from cityos_interoperability.ngsild.representation import parse_list
from cityos_interoperability.ngsild.responses import json_response, no_content
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep
from cityos_interoperability.temporal.documents import (
    TemporalCompactor,
    TemporalFormat,
    expand_instance,
    expand_temporal_entity,
    expand_temporal_fragment,
    parse_dataset_selection,
    select_datasets,
)
from cityos_interoperability.temporal.paging import TemporalPage, Window, paginate
from cityos_interoperability.temporal.paths import (
    check_instance_id,
    is_dot_segment,
    unmatched_path_error,
)
from cityos_knowledge.service import TemporalQuery, parse_temporal_query
from cityos_support.security import require
from cityos_support.security.policy import DataScope

PATH = "/ngsi-ld/v1/temporal/entities"
READ = [Depends(require("temporal:read"))]
WRITE = [Depends(require("entities:write"))]

TEMPORAL_BODY = {
    "required": True,
    "content": {
        JSON: {"schema": {"type": "object", "required": ["id", "type"]}},
        JSON_LD: {"schema": {"type": "object", "required": ["id", "type", "@context"]}},
    },
}
OBJECT_BODY = {
    "required": True,
    "content": {media_type: {"schema": {"type": "object"}} for media_type in (JSON, JSON_LD)},
}

_FORMATS: dict[str, TemporalFormat] = {
    "normalized": "normalized",
    "concise": "normalized",
    "temporalValues": "temporalValues",
    "simplified": "temporalValues",
    "keyValues": "temporalValues",
    "aggregatedValues": "aggregatedValues",
}
_AGGREGATION = ("aggrMethods", "aggrPeriodDuration")
#: Query parameters of which a Query Temporal Evolution needs at least one (5.7.4).
_SELECTING = ("type", "attrs", "q", "georel", "scopeQ")
#: System members: naming only these in ``attrs`` selects nothing (5.7.4.4).
_SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "observedAt", "instanceId"})

TimerelParam = Annotated[str | None, Query(description="before | after | between")]
InstantParam = Annotated[str | None, Query(description="ISO 8601 date-time")]
DatasetsParam = Annotated[
    str | None, Query(description="Only instances of these datasetIds (@none: the default)")
]
LastNParam = Annotated[
    str | None, Query(alias="lastN", description="Only the last N instances per attribute")
]


async def temporal_parameters(
    timerel: TimerelParam = None,
    timeAt: InstantParam = None,  # noqa: N803
    endTimeAt: InstantParam = None,  # noqa: N803
    timeproperty: Annotated[
        str | None, Query(description="observedAt | createdAt | modifiedAt | deletedAt")
    ] = None,
    lastN: LastNParam = None,  # noqa: N803
    aggrMethods: Annotated[str | None, Query(description="totalCount, avg, max, …")] = None,  # noqa: N803
    aggrPeriodDuration: Annotated[str | None, Query(description="ISO 8601 duration")] = None,  # noqa: N803
) -> None:
    """Declares the temporal query parameters (read by :func:`temporal_query`)."""


TEMPORAL_READ = [*READ, Depends(temporal_parameters)]


def temporal_format(options: str | None, format_: str | None) -> tuple[TemporalFormat, bool]:
    """(representation, sysAttrs) from ``options``/``format`` (400 on unknown or several)."""
    flags = {item.strip() for item in (options or "").split(",") if item.strip()}
    unknown = flags - {*_FORMATS, "sysAttrs"}
    if unknown:
        raise InvalidRequestError(f"unknown options: {', '.join(sorted(unknown))}")
    if format_ is not None and format_ not in _FORMATS:
        raise InvalidRequestError(f"unknown format {format_!r}")
    named = {format_} if format_ is not None else flags - {"sysAttrs"}
    chosen = {_FORMATS[name] for name in named}
    if len(chosen) > 1:
        raise BadRequestDataError("options ask for more than one temporal representation")
    return next(iter(chosen), "normalized"), "sysAttrs" in flags


def temporal_query(
    parameters: Mapping[str, str], fmt: TemporalFormat, *, max_instances: int
) -> TemporalQuery:
    """The facade's TemporalQuery; aggregation (always checked) only for aggregatedValues.

    Instances are read up to one more than an answer holds per attribute: enough for
    :func:`paginate` to see where to cut, without reading a long history whole.
    """
    parsed = parse_temporal_query(parameters)
    if fmt == "aggregatedValues":
        if not parsed.aggr_methods:
            raise BadRequestDataError("the aggregatedValues format needs aggrMethods")
        return parsed
    return replace(parsed, aggr_methods=(), aggr_period=None, instance_limit=max_instances + 1)


def check_projection(parameters: Mapping[str, str]) -> None:
    """pick/omit/attrs combinations 5.7.3.4 rejects, csf and orderBy (400 BadRequestData).

    Linked Entity projection (``owner{name}``, 4.21) is refused: the temporal API has no
    ``join`` to resolve it.
    """
    for member in ("pick", "omit", "attrs"):
        if "{" in (parameters.get(member) or "") or "}" in (parameters.get(member) or ""):
            raise BadRequestDataError(f"{member}: the temporal API has no Linked Entity retrieval")
    pick = parse_list(parameters.get("pick"), "pick") or frozenset()
    omit = parse_list(parameters.get("omit"), "omit") or frozenset()
    if pick & omit:
        raise BadRequestDataError(f"{', '.join(sorted(pick & omit))} is in both pick and omit")
    if (pick or omit) and parameters.get("attrs"):
        raise BadRequestDataError("attrs cannot be combined with pick or omit")
    if parameters.get("csf"):
        parse_query({"q": parameters["csf"]}, max_limit=1_000_000)
    order = parameters.get("orderBy")
    if order is not None and order.split(";")[0] != "id":
        raise BadRequestDataError("a temporal query can only be ordered by id")


def selects_entities(parameters: Mapping[str, str]) -> bool:
    """Whether a temporal query narrows the entities: a type, a non-system attribute,
    q, a geo-query or scopeQ (5.7.4.4; without one it is too wide)."""
    if any(parameters.get(name) for name in _SELECTING if name != "attrs"):
        return True
    names = parse_list(parameters.get("attrs"), "attrs") or frozenset()
    return bool(names - _SYSTEM_MEMBERS)


def has_instances(entity: Mapping[str, Any]) -> bool:
    """Whether a temporal answer holds any instance (an aggregation always counts)."""
    for name, value in entity.items():
        if name in ("id", "type", "scope", "@context", "createdAt", "modifiedAt"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, Mapping):
                return True
            lists = [v for k, v in item.items() if k not in ("type", "datasetId")]
            if not lists or any(not isinstance(v, list) or v for v in lists):
                return True
    return False


def window_of(query: TemporalQuery) -> Window:
    return Window(
        timerel=query.timerel,
        time_at=query.time_at,
        end_time_at=query.end_time_at,
        last_n=query.last_n,
        timeproperty=query.timeproperty,
    )


def query_body_parameters(body: object) -> dict[str, str]:
    """A Query body (5.2.23) with ``temporalQ`` as query-string parameters."""
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestDataError('the body must be a Query object ({"type": "Query", ...})')
    selectors = body.get("entities") or []
    if not isinstance(selectors, list) or not all(isinstance(s, dict) for s in selectors):
        raise BadRequestDataError("entities must be an array of entity selectors")
    geo = body.get("geoQ") or {}
    temporal = body.get("temporalQ") or {}
    attrs = body.get("attrs")
    if not isinstance(geo, dict) or not isinstance(temporal, dict):
        raise BadRequestDataError("geoQ and temporalQ must be objects")
    if attrs is not None and not isinstance(attrs, list):
        raise BadRequestDataError("attrs must be an array")
    found: dict[str, Any] = {
        "type": ",".join(str(s["type"]) for s in selectors if s.get("type")),
        "id": ",".join(str(s["id"]) for s in selectors if s.get("id")),
        "idPattern": "|".join(str(s["idPattern"]) for s in selectors if s.get("idPattern")),
        "attrs": ",".join(str(a) for a in attrs or []),
        "q": body.get("q"),
        "scopeQ": body.get("scopeQ"),
        **{name: geo.get(name) for name in ("georel", "geometry", "geoproperty")},
        **{
            name: temporal.get(name)
            for name in ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN")
        },
    }
    aggregation = body.get("aggrParams") or {}
    if not isinstance(aggregation, dict):
        raise BadRequestDataError("aggrParams must be an object")
    for name in _AGGREGATION:
        value = aggregation.get(name, temporal.get(name))
        if isinstance(value, list):
            value = ",".join(str(item) for item in value)
        found[name] = value
    if geo.get("coordinates") is not None:
        coordinates = geo["coordinates"]
        found["coordinates"] = (
            coordinates if isinstance(coordinates, str) else orjson.dumps(coordinates).decode()
        )
    return {name: str(value) for name, value in found.items() if value not in (None, "")}


def build(services: ApiServices) -> APIRouter:
    router = APIRouter(route_class=services.route_class, tags=["Temporal"])
    settings = services.settings

    def answer(
        request: Request,
        terms: TermMap,
        page: TemporalPage,
        compactor: TemporalCompactor,
        *,
        single: bool,
        headers: dict[str, str] | None = None,
    ) -> Response:
        media_type = choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        rendered = [compactor.entity(entity) for entity in page.entities]
        if single and not rendered[0]:
            raise ResourceNotFoundError("pick and omit leave nothing of the entity")
        all_headers = dict(headers or {})
        if page.content_range is not None:
            all_headers["Content-Range"] = page.content_range
        return json_response(
            rendered[0] if single else rendered,
            media_type=media_type,
            terms=terms,
            status_code=206 if page.content_range is not None else 200,
            headers=all_headers,
        )

    def cap(
        entities: list[dict[str, Any]], fmt: TemporalFormat, query: TemporalQuery
    ) -> TemporalPage:
        if fmt == "aggregatedValues":
            return TemporalPage(entities)
        return paginate(entities, window_of(query), settings.temporal_max_instances, fmt)

    async def run_query(
        request: Request,
        tenant: str | None,
        scope: DataScope,
        parameters: Mapping[str, str],
        terms: TermMap,
        options: str | None,
        format_: str | None,
        local: bool,
    ) -> Response:
        choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        fmt, sys_attrs = temporal_format(options, format_)
        check_projection(parameters)
        datasets = parse_dataset_selection(parameters.get("datasetId"))
        if not local and not selects_entities(parameters):
            raise BadRequestDataError(
                "a temporal query needs at least one of type, attrs, q, geoQ or scopeQ"
            )
        query = entity_query(settings, parameters)
        temporal = temporal_query(parameters, fmt, max_instances=settings.temporal_max_instances)
        facade = facade_for(services, scope)
        page = await run_in_threadpool(
            lambda: facade.query_temporal(
                tenant,
                query,
                temporal,
                expand=terms.expand,
                representation="temporalValues" if fmt == "temporalValues" else "normalized",
                sys_attrs=sys_attrs or temporal.timeproperty != "observedAt",
            )
        )
        compactor = TemporalCompactor(
            terms,
            fmt,
            sys_attrs=sys_attrs,
            pick=parse_list(parameters.get("pick"), "pick"),
            omit=parse_list(parameters.get("omit"), "omit"),
            lang=parameters.get("lang"),
        )
        headers = {}
        if parameters.get("count") == "true" and page.count is not None:
            headers["NGSILD-Results-Count"] = str(page.count)
        found = page.entities
        if datasets is not None:
            found = [select_datasets(entity, datasets) for entity in found]
        if temporal.timerel is not None or datasets is not None:
            # Entities chosen on their current state but without an instance in the
            # window (or of the datasets asked for) are not part of the evolution asked for.
            found = [entity for entity in found if has_instances(entity)]
        return answer(
            request,
            terms,
            cap(found, fmt, temporal),
            compactor,
            single=False,
            headers=headers,
        )

    @router.get(
        "/temporal/entities", operation_id="queryTemporalEntities", dependencies=TEMPORAL_READ
    )
    async def query_temporal_entities(
        request: Request,
        tenant: TenantDep,
        scope: TemporalScope,
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
        csf: str | None = None,
        orderBy: str | None = None,  # noqa: N803
        options: OptionsParam = None,
        format: FormatParam = None,
        pick: PickParam = None,
        omit: OmitParam = None,
        lang: LangParam = None,
        datasetId: DatasetsParam = None,  # noqa: N803
        limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        count: bool = False,
        local: bool = False,
    ) -> Response:
        """Query the temporal evolution of entities."""
        terms = await request_terms(services, request)
        return await run_query(
            request, tenant, scope, request.query_params, terms, options, format, local
        )

    @router.post(
        "/temporal/entityOperations/query",
        operation_id="queryTemporalEntitiesBatch",
        dependencies=READ,
        openapi_extra={"requestBody": OBJECT_BODY},
    )
    async def query_temporal_batch(
        request: Request,
        tenant: TenantDep,
        scope: TemporalScope,
        options: OptionsParam = None,
        format: FormatParam = None,
        aggrMethods: str | None = None,  # noqa: N803
        aggrPeriodDuration: str | None = None,  # noqa: N803
        limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        count: bool = False,
        local: bool = False,
    ) -> Response:
        """Query the temporal evolution of entities with a Query body (temporalQ)."""
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        terms = await services.terms(document.context)
        parameters = {**request.query_params, **query_body_parameters(document.body)}
        if "aggrMethods" in parameters and format is None and not options:
            format = "aggregatedValues"  # the body's aggrParams ask for aggregation
        return await run_query(request, tenant, scope, parameters, terms, options, format, local)

    @router.post(
        "/temporal/entities",
        operation_id="createTemporalEntity",
        dependencies=WRITE,
        openapi_extra={"requestBody": TEMPORAL_BODY},
        responses={201: {"description": "Created"}, 204: {"description": "Instances added"}},
    )
    async def create_temporal_entity(
        request: Request, tenant: TenantDep, scope: WriteScope
    ) -> Response:
        """Create a temporal entity, or add instances to an existing one."""
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        terms = await services.terms(document.context)
        entity = expand_temporal_entity(terms, document.body)
        created = await run_in_threadpool(
            facade_for(services, scope).create_temporal_entity, tenant, entity
        )
        if created:
            return Response(status_code=201, headers={"Location": f"{PATH}/{entity['id']}"})
        return no_content()

    @router.get(
        "/temporal/entities/{entityId}",
        operation_id="retrieveTemporalEntity",
        dependencies=TEMPORAL_READ,
    )
    async def retrieve_temporal_entity(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: TemporalScope,
        attrs: AttrsParam = None,
        options: OptionsParam = None,
        format: FormatParam = None,
        pick: PickParam = None,
        omit: OmitParam = None,
        lang: LangParam = None,
        datasetId: DatasetsParam = None,  # noqa: N803
        local: bool = False,
    ) -> Response:
        """Retrieve the temporal evolution of one entity."""
        check_entity_id(entityId)
        choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        fmt, sys_attrs = temporal_format(options, format)
        check_projection(request.query_params)
        datasets = parse_dataset_selection(datasetId)
        temporal = temporal_query(
            request.query_params, fmt, max_instances=settings.temporal_max_instances
        )
        terms = await request_terms(services, request)
        names = expand_attrs(terms, attrs)
        entity = await run_in_threadpool(
            lambda: facade_for(services, scope).retrieve_temporal(
                tenant,
                entityId,
                temporal,
                attrs=names,
                representation="temporalValues" if fmt == "temporalValues" else "normalized",
                sys_attrs=sys_attrs or temporal.timeproperty != "observedAt",
            )
        )
        compactor = TemporalCompactor(
            terms,
            fmt,
            sys_attrs=sys_attrs,
            pick=parse_list(pick, "pick"),
            omit=parse_list(omit, "omit"),
            lang=lang,
        )
        if names is not None and set(entity) <= {"id", "type", "scope"}:
            raise ResourceNotFoundError(f"entity {entityId} has none of the attributes {attrs}")
        if datasets is not None:
            entity = select_datasets(entity, datasets)
        return answer(request, terms, cap([entity], fmt, temporal), compactor, single=True)

    @router.delete(
        "/temporal/entities/{entityId}",
        operation_id="deleteTemporalEntity",
        status_code=204,
        dependencies=WRITE,
    )
    async def delete_temporal_entity(
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
    ) -> Response:
        """Delete an entity and its whole history."""
        check_entity_id(entityId)
        await run_in_threadpool(
            facade_for(services, scope).delete_temporal_entity, tenant, entityId
        )
        return no_content()

    @router.post(
        "/temporal/entities/{entityId}/attrs",
        operation_id="addTemporalAttributes",
        status_code=204,
        dependencies=WRITE,
        openapi_extra={"requestBody": OBJECT_BODY},
    )
    async def add_temporal_attributes(
        request: Request,
        entityId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
    ) -> Response:
        """Add attribute instances to a temporal entity."""
        check_entity_id(entityId)
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        terms = await services.terms(document.context)
        fragment = expand_temporal_fragment(terms, document.body)
        await run_in_threadpool(
            facade_for(services, scope).append_temporal_attributes, tenant, entityId, fragment
        )
        return no_content()

    @router.delete(
        "/temporal/entities/{entityId}/attrs/{attrId}",
        operation_id="deleteTemporalAttribute",
        status_code=204,
        dependencies=WRITE,
    )
    async def delete_temporal_attribute(
        request: Request,
        entityId: str,  # noqa: N803
        attrId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
        datasetId: str | None = None,  # noqa: N803
        deleteAll: bool = False,  # noqa: N803
    ) -> Response:
        """Delete the history of an attribute (one datasetId, or all with deleteAll)."""
        check_entity_id(entityId)
        terms = await request_terms(services, request)
        name = attribute_name(terms, attrId)
        await run_in_threadpool(
            lambda: facade_for(services, scope).delete_temporal_attribute(
                tenant, entityId, name, dataset_id=datasetId, delete_all=deleteAll
            )
        )
        return no_content()

    @router.patch(
        "/temporal/entities/{entityId}/attrs/{attrId}/{instanceId}",
        operation_id="modifyTemporalAttributeInstance",
        status_code=204,
        dependencies=WRITE,
        openapi_extra={"requestBody": OBJECT_BODY},
    )
    async def modify_instance(
        request: Request,
        entityId: str,  # noqa: N803
        attrId: str,  # noqa: N803
        instanceId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
    ) -> Response:
        """Change the value or sub-attributes of one attribute instance."""
        check_entity_id(entityId)
        check_instance_id(instanceId)
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        terms = await services.terms(document.context)
        name = attribute_name(terms, attrId)
        partial = expand_instance(terms, attrId, document.body)
        await run_in_threadpool(
            facade_for(services, scope).modify_attribute_instance,
            tenant,
            entityId,
            name,
            instanceId,
            partial,
        )
        return no_content()

    @router.delete(
        "/temporal/entities/{entityId}/attrs/{attrId}/{instanceId}",
        operation_id="deleteTemporalAttributeInstance",
        status_code=204,
        dependencies=WRITE,
    )
    async def delete_instance(
        request: Request,
        entityId: str,  # noqa: N803
        attrId: str,  # noqa: N803
        instanceId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriteScope,
    ) -> Response:
        """Delete one attribute instance."""
        check_entity_id(entityId)
        check_instance_id(instanceId)
        terms = await request_terms(services, request)
        name = attribute_name(terms, attrId)
        await run_in_threadpool(
            facade_for(services, scope).delete_attribute_instance,
            tenant,
            entityId,
            name,
            instanceId,
        )
        return no_content()

    async def unmatched_temporal_path(request: Request, rest: str) -> Response:
        """Paths under /temporal/entities that name no resource."""
        if not rest:  # /temporal/entities/ : what the application's slash redirect does
            path = request.url.path.rstrip("/")
            return RedirectResponse(request.url.replace(path=path), status_code=307)
        raise unmatched_path_error(request.method, rest)

    # Its query parameters belong to the operation the client meant: not judged here.
    router.add_api_route(
        "/temporal/entities/{rest:path}",
        unmatched_temporal_path,
        methods=["GET", "POST", "PATCH", "DELETE"],
        include_in_schema=False,
        dependencies=READ,
        route_class_override=type(
            "UnmatchedTemporalRoute",
            (services.route_class,),
            {"_check_preconditions": lambda self, request: None},
        ),
    )

    return router


def attribute_name(terms: TermMap, name: str) -> str:
    """An attribute name from the path, expanded (``.``/``..`` and bad names are 400)."""
    if is_dot_segment(name):
        raise BadRequestDataError(f"{name!r} is not an attribute name")
    return terms.expand(check_name(name, "attribute name"))
