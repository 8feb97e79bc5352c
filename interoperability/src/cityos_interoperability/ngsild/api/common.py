"""Pieces every entity-shaped route shares: the facade, representation, rendering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    ServiceUnavailableError,
)
from cityos_interoperability.ngsild.facade import EntityQuery, KnowledgeFacade, parse_query
from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.jsonld.expansion import is_uri
from cityos_interoperability.ngsild.negotiation import (
    ENTITY_REPRESENTATIONS,
    GEO_JSON,
    choose_representation,
    context_from_link_header,
    prefers_body_json,
)
from cityos_interoperability.ngsild.representation import (
    Compactor,
    Representation,
    parse_list,
    parse_options,
)
from cityos_interoperability.ngsild.responses import json_response
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.settings import InteroperabilitySettings

OptionsParam = Annotated[
    str | None,
    Query(description="keyValues | concise | normalized, sysAttrs, noOverwrite (per operation)"),
]
FormatParam = Annotated[str | None, Query(description="normalized | concise | keyValues")]
PickParam = Annotated[str | None, Query(description="Top-level members to keep")]
OmitParam = Annotated[str | None, Query(description="Top-level members to leave out")]
AttrsParam = Annotated[str | None, Query(description="Attributes to return (comma-separated)")]
LangParam = Annotated[str | None, Query(description="Language for LanguageProperty values")]
GeometryPropertyParam = Annotated[
    str | None,
    Query(alias="geometryProperty", description="GeoProperty used as GeoJSON geometry"),
]


def facade_of(services: ApiServices) -> KnowledgeFacade:
    """The knowledge facade, or 503 when this process was built without one."""
    if services.knowledge is None:
        raise ServiceUnavailableError(
            "the context store is not available in this process "
            "(the knowledge service facade is not configured)"
        )
    return services.knowledge


def check_entity_id(entity_id: str) -> str:
    if not is_uri(entity_id):
        raise BadRequestDataError(f"entity id {entity_id!r} is not a URI")
    return entity_id


async def request_terms(services: ApiServices, request: Request) -> TermMap:
    """The term map of a read request (its @context comes from the Link header)."""
    return await services.terms(context_from_link_header(request.headers.get("link")))


def representation(
    options: str | None,
    format_: str | None,
    pick: str | None,
    omit: str | None,
    lang: str | None,
    *,
    allowed: Sequence[str] = (),
) -> Representation:
    fmt, flags = parse_options(options, format_, allowed=allowed)
    picked = parse_list(pick, "pick")
    omitted = parse_list(omit, "omit")
    if picked is not None and omitted is not None:
        raise BadRequestDataError("pick and omit cannot be used together")
    return Representation(
        format=fmt, sys_attrs="sysAttrs" in flags, pick=picked, omit=omitted, lang=lang
    )


def expand_attrs(terms: TermMap, attrs: str | None) -> list[str] | None:
    names = parse_list(attrs, "attrs")
    return None if names is None else [terms.expand(name) for name in sorted(names)]


def entity_media_type(request: Request) -> str:
    """The negotiated representation of an entity read (406 before any work is done)."""
    return choose_representation(request.headers.get("accept"), ENTITY_REPRESENTATIONS)


async def render_entities(
    request: Request,
    media_type: str,
    terms: TermMap,
    rep: Representation,
    entities: Sequence[Mapping[str, Any]],
    *,
    single: bool,
    geometry_property: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Entities in the negotiated media type: JSON (+Link), JSON-LD, or GeoJSON."""
    compactor = Compactor(terms, rep)
    if media_type == GEO_JSON:
        geometry = geometry_property or "location"
        features = await run_in_threadpool(
            lambda: [compactor.feature(entity, geometry) for entity in entities]
        )
        body: Any = features[0] if single else {"type": "FeatureCollection", "features": features}
        embed = not prefers_body_json(request.headers.get("prefer"))
        return json_response(
            body, media_type=GEO_JSON, terms=terms, headers=headers, embed_context=embed
        )
    rendered = await run_in_threadpool(lambda: [compactor.entity(entity) for entity in entities])
    return json_response(
        rendered[0] if single else rendered, media_type=media_type, terms=terms, headers=headers
    )


def entity_query(settings: InteroperabilitySettings, parameters: Mapping[str, str]) -> EntityQuery:
    """Query Entities parameters parsed by the facade's query module (400/403 on bad ones)."""
    geo = [parameters.get(name) is not None for name in ("georel", "geometry", "coordinates")]
    if any(geo) and not all(geo):
        raise BadRequestDataError("georel, geometry and coordinates go together")
    return parse_query(parameters, max_limit=settings.max_page_size)
