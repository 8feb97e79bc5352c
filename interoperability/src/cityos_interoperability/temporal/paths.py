"""Paths under ``/temporal/entities/`` that name no route: which error they deserve.

The temporal resources are the entity (GET, DELETE), its ``attrs`` (POST), one attribute
(DELETE) and one attribute instance (PATCH, DELETE). A request that reaches none of their
routes is answered here:

- an empty entity id (``/temporal/entities//attrs``) is 400 BadRequestData;
- a path that, without its other empty segments, has the shape of one of those resources
  names that resource: a method it does not allow is 405 with ``Allow`` (``PATCH
  …/attrs/speed/`` and ``PATCH …/attrs//<instance>`` ask to patch an attribute, which only
  DELETE serves);
- any other path with an empty segment leaves out an attribute name or instance id: 400
  BadRequestData;
- anything else names no temporal resource: 404.

Attribute names are checked after folding percent escapes (:func:`folded`), because a
dot segment spelled ``%2e%2e`` (or doubly encoded, ``%252e%252e``) would be resolved by
whatever hands the path on (RFC 3986 5.2.4) and address the entity instead of its
attribute.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    MethodNotAllowedError,
    NgsiLdError,
    ResourceNotFoundError,
)
from cityos_interoperability.ngsild.jsonld.expansion import is_uri

#: Resource shapes (relative to /temporal/entities/) and the methods each one serves.
RESOURCES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"[^/]+"), ("GET", "DELETE")),
    (re.compile(r"[^/]+/attrs"), ("POST",)),
    (re.compile(r"[^/]+/attrs/[^/]+"), ("DELETE",)),
    (re.compile(r"[^/]+/attrs/[^/]+/[^/]+"), ("PATCH", "DELETE")),
)

#: Percent-decoding rounds before a name is judged (enough for any real double encoding).
_FOLD_ROUNDS = 4


class ResourceMethodNotAllowedError(MethodNotAllowedError):
    """405 with the methods the resource does allow (RFC 9110 15.5.6: ``Allow``)."""

    def __init__(self, detail: str, allowed: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


def folded(name: str) -> str:
    """``name`` with its percent escapes decoded until nothing changes (bounded)."""
    for _ in range(_FOLD_ROUNDS):
        decoded = unquote(name)
        if decoded == name:
            break
        name = decoded
    return name


def is_dot_segment(name: str) -> bool:
    """Whether ``name`` is, once decoded, ``.`` or ``..`` or holds a ``/``."""
    plain = folded(name)
    return plain in (".", "..") or "/" in plain


def unmatched_path_error(method: str, rest: str) -> NgsiLdError:
    """The error for ``<method> /temporal/entities/<rest>`` that matched no route."""
    segments = rest.split("/")
    if not segments[0]:
        return BadRequestDataError("the entity id is empty")
    collapsed = "/".join(segment for segment in segments if segment)
    for shape, allowed in RESOURCES:
        if shape.fullmatch(collapsed) and method not in allowed:
            return ResourceMethodNotAllowedError(
                f"{method} is not allowed on /temporal/entities/{collapsed}", allowed
            )
    if "" in segments:
        return BadRequestDataError("an entity id, attribute name or instance id is empty")
    return ResourceNotFoundError(f"/temporal/entities/{rest} names no temporal resource")


def check_instance_id(instance_id: str) -> str:
    """An attribute instance id from the path: a URI (4.5.7), else 400 BadRequestData."""
    if not is_uri(instance_id):
        raise BadRequestDataError(f"instance id {instance_id!r} is not a URI")
    return instance_id
