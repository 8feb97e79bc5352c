"""Building NGSI-LD JSON responses: the @context goes in a Link header or in the body."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from cityos_interoperability.ngsild.jsonld.context import TermMap
from cityos_interoperability.ngsild.negotiation import GEO_JSON, JSON, JSON_LD, link_header


def response_context(terms: TermMap) -> Any:
    """The @context a response names: the client's, else the core context URL."""
    if terms.user_context is None:
        return terms.context[-1]
    return terms.user_context


def context_link_url(terms: TermMap) -> str:
    """One URL for the Link header (a JSON response cannot carry an inline context)."""
    context = response_context(terms)
    if isinstance(context, str):
        return context
    if isinstance(context, list) and len(context) == 1 and isinstance(context[0], str):
        return str(context[0])
    return str(terms.context[-1])


def json_response(
    content: Any,
    *,
    media_type: str,
    terms: TermMap,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    embed_context: bool | None = None,
) -> Response:
    """``content`` as JSON, JSON-LD (with @context in each object) or GeoJSON."""
    all_headers = dict(headers or {})
    if embed_context is None:
        embed_context = media_type in {JSON_LD, GEO_JSON}
    if embed_context:
        context = response_context(terms)
        if isinstance(content, list):
            content = [_with_context(item, context) for item in content]
        elif isinstance(content, dict):
            content = _with_context(content, context)
    if media_type == JSON or (media_type == GEO_JSON and not embed_context):
        context_link = link_header(context_link_url(terms))
        # Other links (pagination, 5.5.9) share the header with the @context link.
        other = all_headers.get("Link")
        all_headers["Link"] = f"{other}, {context_link}" if other else context_link
    return Response(
        content=orjson.dumps(content),
        status_code=status_code,
        media_type=media_type,
        headers=all_headers,
    )


def _with_context(item: Any, context: Any) -> Any:
    if not isinstance(item, dict):
        return item
    return {**item, "@context": context}


def no_content(headers: dict[str, str] | None = None) -> Response:
    """204 without a body and without Content-Length (6.3.6)."""
    response = Response(status_code=204, headers=headers)
    if "content-length" in response.headers:
        del response.headers["content-length"]
    return response
