"""Pieces every entity-shaped route shares: the facade, representation, rendering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    ResourceNotFoundError,
    ServiceUnavailableError,
)
from cityos_interoperability.ngsild.facade import (
    EntityPage,
    EntityQuery,
    KnowledgeFacade,
    parse_query,
)
from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.jsonld.expansion import is_uri
from cityos_interoperability.ngsild.linked import Joined, join_linked
from cityos_interoperability.ngsild.negotiation import (
    ENTITY_REPRESENTATIONS,
    GEO_JSON,
    choose_representation,
    context_from_link_header,
    prefers_body_json,
)
from cityos_interoperability.ngsild.projection import Selection, parse_selection
from cityos_interoperability.ngsild.representation import (
    Compactor,
    Representation,
    parse_list,
    parse_options,
)
from cityos_interoperability.ngsild.responses import json_response
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.settings import InteroperabilitySettings

#: Entity members that are not attributes: never valid in ``attrs``.
CORE_MEMBERS = frozenset({"id", "type", "@context"})

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
DatasetIdParam = Annotated[
    str | None,
    Query(alias="datasetId", description="Attribute instances to return (@none: default)"),
]
JoinParam = Annotated[
    str | None, Query(description="Linked Entity retrieval: flat | inline | @none (4.5.23)")
]
JoinLevelParam = Annotated[
    str | None, Query(alias="joinLevel", description="Relationship hops followed (default 1)")
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
    attrs: str | None = None,
) -> Representation:
    """The representation a read asks for; pick/omit/attrs may project linked entities."""
    return projected(options, format_, lang, selections(pick, omit, attrs), allowed=allowed)


def selections(
    pick: str | None, omit: str | None, attrs: str | None
) -> tuple[Selection | None, Selection | None, Selection | None]:
    """Parse pick, omit and attrs (4.21); attrs excludes the other two (400)."""
    picked = parse_selection("pick", pick)
    omitted = parse_selection("omit", omit)
    wanted = parse_selection("attrs", attrs, separators=",")
    if picked is not None and omitted is not None:
        raise BadRequestDataError("pick and omit cannot be used together")
    if wanted is not None and (picked is not None or omitted is not None):
        raise BadRequestDataError("attrs cannot be combined with pick or omit")
    core = sorted(CORE_MEMBERS.intersection(wanted.names)) if wanted is not None else []
    if core:
        raise BadRequestDataError(f"attrs names attributes; {core[0]!r} is not one")
    return picked, omitted, wanted


def projected(
    options: str | None,
    format_: str | None,
    lang: str | None,
    chosen: tuple[Selection | None, Selection | None, Selection | None],
    *,
    allowed: Sequence[str] = (),
) -> Representation:
    fmt, flags = parse_options(options, format_, allowed=allowed)
    picked, omitted, wanted = chosen
    base = Representation(format=fmt, sys_attrs="sysAttrs" in flags, lang=lang)
    return replace(
        base,
        pick=_names(picked),
        omit=_omitted(omitted),
        linked=_linked(base, picked, omitted, wanted),
    )


def _names(selection: Selection | None) -> frozenset[str] | None:
    return None if selection is None else frozenset(selection.names)


def _omitted(selection: Selection | None) -> frozenset[str] | None:
    return None if selection is None else frozenset(selection.omitted)


def _linked(
    base: Representation,
    pick: Selection | None,
    omit: Selection | None,
    attrs: Selection | None,
) -> dict[str, Representation]:
    """Per Relationship name, the representation of the entities it links to."""
    levels = [s.linked if s is not None else {} for s in (pick, omit, attrs)]
    linked: dict[str, Representation] = {}
    for name in {name for level in levels for name in level}:
        child_pick, child_omit, child_attrs = (level.get(name) for level in levels)
        linked[name] = replace(
            base,
            pick=_names(child_pick),
            omit=_omitted(child_omit),
            attrs=_names(child_attrs),
            linked=_linked(base, child_pick, child_omit, child_attrs),
        )
    return linked


def top_level(parameters: Mapping[str, str]) -> dict[str, str]:
    """Query parameters with pick/omit/attrs reduced to the requested entities' members.

    The store projects the requested entities; the braces (linked entities) are applied
    by the join.
    """
    found = dict(parameters)
    for name in ("pick", "omit", "attrs"):
        text = found.get(name)
        if text is not None and "{" in text:
            separators = "," if name == "attrs" else ",|"
            selection = parse_selection(name, text, separators=separators)
            assert selection is not None
            kept = selection.omitted if name == "omit" else selection.names
            if kept:
                found[name] = ",".join(kept)
            else:
                del found[name]
    return found


def expand_attrs(terms: TermMap, attrs: str | Selection | None) -> list[str] | None:
    """``attrs`` (text or a parsed selection's top level) as IRIs."""
    if isinstance(attrs, Selection):
        return [terms.expand(name) for name in sorted(attrs.names)]
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
    linked: Sequence[tuple[Mapping[str, Any], Representation]] = (),
) -> Response:
    """Entities in the negotiated media type: JSON (+Link), JSON-LD, or GeoJSON.

    ``linked`` are the entities a ``join=flat`` found, each with its own representation:
    they follow the requested ones, and turn a single entity's answer into an array.
    """
    if geometry_property is not None and media_type != GEO_JSON:
        raise BadRequestDataError("geometryProperty is only meaningful with application/geo+json")
    pairs = [(entity, rep) for entity in entities] + list(linked)
    single = single and not linked
    if media_type == GEO_JSON:
        geometry = geometry_property or "location"
        features = await run_in_threadpool(
            lambda: [Compactor(terms, r).feature(entity, geometry) for entity, r in pairs]
        )
        body: Any = features[0] if single else {"type": "FeatureCollection", "features": features}
        embed = not prefers_body_json(request.headers.get("prefer"))
        return json_response(
            body, media_type=GEO_JSON, terms=terms, headers=headers, embed_context=embed
        )
    rendered = await run_in_threadpool(
        lambda: [Compactor(terms, r).entity(entity) for entity, r in pairs]
    )
    if single and not rendered[0]:
        # 4.21: a projection that leaves nothing of the entity matches no entity member.
        raise ResourceNotFoundError("pick/omit leave no member of the entity")
    # ... and in a list, such an entity is not one of the results.
    rendered = [entity for entity in rendered if entity]
    return json_response(
        rendered[0] if single else rendered, media_type=media_type, terms=terms, headers=headers
    )


#: ``datasetId`` value naming the default instance (the one without a datasetId).
DEFAULT_INSTANCE = "@none"


def dataset_ids(text: str | None) -> frozenset[str] | None:
    """``datasetId`` (4.5.5, 5.7.1, 5.7.2): the attribute instances to return."""
    if text is None:
        return None
    ids = frozenset(item.strip() for item in text.split(",") if item.strip())
    for dataset_id in ids - {DEFAULT_INSTANCE}:
        if not is_uri(dataset_id):
            raise BadRequestDataError(f"datasetId {dataset_id!r} is not a URI (or @none)")
    if not ids:
        raise BadRequestDataError("datasetId must name at least one dataset")
    return ids


def keep_instances(entity: dict[str, Any], wanted: frozenset[str]) -> dict[str, Any]:
    """``entity`` with only the attribute instances of the datasets in ``wanted``.

    An attribute left without instances is left out; the entity itself stays.
    """
    kept: dict[str, Any] = {}
    for name, value in entity.items():
        instances = value if isinstance(value, list) else [value]
        if name in CORE_MEMBERS or not all(isinstance(i, dict) for i in instances):
            kept[name] = value
            continue
        chosen = [i for i in instances if i.get("datasetId", DEFAULT_INSTANCE) in wanted]
        if chosen:
            kept[name] = chosen[0] if len(chosen) == 1 else chosen
    return kept


def query_and_join(
    facade: KnowledgeFacade,
    tenant: str | None,
    query: EntityQuery,
    terms: TermMap,
    rep: Representation,
    *,
    datasets: frozenset[str] | None,
    join: str | None,
    level: int,
) -> tuple[EntityPage, Joined]:
    """Query Entities, keep the datasets asked for, then follow links (blocking)."""
    page = facade.query_entities(tenant, query, expand=terms.expand, sys_attrs=rep.sys_attrs)
    joined = join_found(
        facade, tenant, page.entities, terms, rep, datasets=datasets, join=join, level=level
    )
    return page, joined


def join_found(
    facade: KnowledgeFacade,
    tenant: str | None,
    found: list[dict[str, Any]],
    terms: TermMap,
    rep: Representation,
    *,
    datasets: frozenset[str] | None,
    join: str | None,
    level: int,
) -> Joined:
    """Keep the datasets asked for in the entities read, then follow links (blocking)."""
    if datasets is not None:
        found = [keep_instances(entity, datasets) for entity in found]
    return linked_entities(facade, tenant, found, rep, terms, join=join, level=level)


async def answer_query(
    request: Request,
    media_type: str,
    facade: KnowledgeFacade,
    tenant: str | None,
    query: EntityQuery,
    terms: TermMap,
    rep: Representation,
    *,
    datasets: frozenset[str] | None,
    join: str | None,
    level: int,
    count: bool,
    geometry_property: str | None,
    with_page_links: bool,
) -> Response:
    """Run Query Entities (GET /entities or POST /entityOperations/query) and render the page.

    ``NGSILD-Results-Count`` when ``count`` asked for it; prev/next ``Link`` headers when
    ``with_page_links`` (the GET form, whose parameters the links repeat).
    """
    page, joined = await run_in_threadpool(
        lambda: query_and_join(
            facade, tenant, query, terms, rep, datasets=datasets, join=join, level=level
        )
    )
    headers: dict[str, str] = {}
    if count and page.count is not None:
        headers["NGSILD-Results-Count"] = str(page.count)
    if with_page_links:
        links = page_links(
            request,
            media_type,
            offset=query.offset,
            limit=query.limit,
            returned=len(page.entities),
            total=page.count,
        )
        if links:
            headers["Link"] = links
    return await render_entities(
        request,
        media_type,
        terms,
        rep,
        joined.entities,
        single=False,
        geometry_property=geometry_property,
        headers=headers,
        linked=joined.linked,
    )


def linked_entities(
    facade: KnowledgeFacade,
    tenant: str | None,
    entities: list[dict[str, Any]],
    rep: Representation,
    terms: TermMap,
    *,
    join: str | None,
    level: int,
) -> Joined:
    """Linked Entity retrieval for read entities (blocking: run it in the thread pool)."""
    if join not in {"flat", "inline"}:
        return Joined(entities, [])

    def fetch(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        query = EntityQuery(ids=tuple(ids), limit=len(ids))
        page = facade.query_entities(tenant, query, sys_attrs=rep.sys_attrs)
        return {str(entity["id"]): entity for entity in page.entities}

    return join_linked(
        entities, rep, terms, fetch, join="flat" if join == "flat" else "inline", level=level
    )


#: Characters left unescaped in the query strings of pagination links.
_QUERY_SAFE = ":/*,;|!$'()+@[]{}^"


def page_links(
    request: Request,
    media_type: str,
    *,
    offset: int,
    limit: int,
    returned: int,
    total: int | None,
) -> str | None:
    """The ``Link`` header value with ``prev``/``next`` pages (4.12, 5.5.9), or None.

    ``next`` is given when elements remain: known from the total when the client asked
    for ``count``, otherwise assumed when the page came back full. The links repeat the
    request's parameters (sorted) with ``offset`` and ``limit`` moved.
    """
    if limit == 0:
        return None
    more = offset + returned < total if total is not None else returned == limit
    links = []
    if offset > 0:
        links.append((max(0, offset - limit), "prev"))
    if more:
        links.append((offset + limit, "next"))
    if not links:
        return None
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in {"offset", "limit"}]

    def link(page_offset: int, rel: str) -> str:
        items = sorted([*kept, ("limit", str(limit)), ("offset", str(page_offset))])
        query = "&".join(
            f"{quote(k, safe=_QUERY_SAFE)}={quote(v, safe=_QUERY_SAFE)}" for k, v in items
        )
        return f'<{request.url.path}?{query}>; rel="{rel}"; type="{media_type}"'

    return ", ".join(link(page_offset, rel) for page_offset, rel in links)


def entity_query(settings: InteroperabilitySettings, parameters: Mapping[str, str]) -> EntityQuery:
    """Query Entities parameters parsed by the facade's query module (400/403 on bad ones)."""
    geo = [parameters.get(name) is not None for name in ("georel", "geometry", "coordinates")]
    if any(geo) and not all(geo):
        raise BadRequestDataError("georel, geometry and coordinates go together")
    return parse_query(parameters, max_limit=settings.max_page_size)
