"""Reading an NGSI-LD request body: media type (415), size (413), JSON (400), @context.

Routes take the body through :func:`read_document` rather than a pydantic model, because
an NGSI-LD entity is open-ended JSON whose member names depend on the @context, and the
error types of a bad body are the spec's, not FastAPI's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from cityos_interoperability.ngsild.jsonld.context import ContextValue
from cityos_interoperability.ngsild.negotiation import (
    JSON,
    JSON_LD,
    context_from_link_header,
    media_type_of,
)

BODY_MEDIA_TYPES: tuple[str, ...] = (JSON, JSON_LD)


@dataclass(frozen=True)
class RequestDocument:
    """A parsed request body with the @context it came with."""

    body: Any
    media_type: str
    #: The @context: from the body (JSON-LD) or the Link header (JSON); None for the core.
    context: ContextValue | None


async def read_document(
    request: Request,
    *,
    max_bytes: int,
    accepted: Collection[str] = BODY_MEDIA_TYPES,
    context_per_item: bool = False,
    carries_context: bool = True,
) -> RequestDocument:
    """Parse the body of ``request`` as NGSI-LD JSON.

    With ``context_per_item`` (batch operations) the body is an array and, as JSON-LD, each
    element carries its own @context; the document's context is then the first one's.
    """
    media_type = media_type_of(request.headers.get("content-type"))
    if media_type not in accepted:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media_type or '(none)'} is not supported here; "
            f"use {' or '.join(accepted)}"
        )
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > max_bytes:
            raise PayloadTooLargeError(f"the request body is larger than {max_bytes} bytes")
    if not raw.strip():
        raise InvalidRequestError("the request body is empty")
    try:
        body = orjson.loads(bytes(raw))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from exc
    link_context = context_from_link_header(request.headers.get("link"))
    context: ContextValue | None
    if not carries_context:
        context = None
    elif media_type == JSON_LD:
        context = _body_context(body, context_per_item)
    else:
        if _has_body_context(body):
            raise BadRequestDataError(
                "a body sent as application/json must not contain @context; "
                "send it as application/ld+json or put the @context in a Link header"
            )
        context = link_context
    return RequestDocument(body=body, media_type=media_type or JSON, context=context)


def _has_body_context(body: Any) -> bool:
    if isinstance(body, dict):
        return "@context" in body
    if isinstance(body, list):
        return any(isinstance(item, dict) and "@context" in item for item in body)
    return False


def _body_context(body: Any, per_item: bool) -> ContextValue | None:
    if per_item and isinstance(body, list):
        contexts = [item.get("@context") if isinstance(item, dict) else None for item in body]
        if any(context is None for context in contexts):
            raise BadRequestDataError("every entity sent as application/ld+json needs its @context")
        return contexts[0] if contexts else None
    if not isinstance(body, dict) or body.get("@context") is None:
        raise BadRequestDataError("a body sent as application/ld+json needs an @context member")
    context = body["@context"]
    if not isinstance(context, str | dict | list):
        raise BadRequestDataError("@context must be a URL, an object or an array")
    return context
