"""Content negotiation as GS CIM 009 clause 6.3.4 to 6.3.6 describes it.

- Request bodies: ``application/json`` (the @context comes from a ``Link`` header and must
  not be in the body), ``application/ld+json`` (the @context must be in the body), and for
  merge-patch operations ``application/merge-patch+json``; anything else is 415.
- Responses: the offered representations are tried in the spec's list order
  (``application/json``, ``application/ld+json``, ``application/geo+json``); the Accept
  header's weights decide first, the list order breaks ties (RFC 9110 5.3.2: the most
  specific matching range gives a representation its weight).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cityos_interoperability.ngsild.errors import BadRequestDataError, NotAcceptableError

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"

#: The representations an entity read offers, in the order of clause 6.3.4.
ENTITY_REPRESENTATIONS: tuple[str, ...] = (JSON, JSON_LD, GEO_JSON)
#: What other reads offer (no GeoJSON).
JSON_REPRESENTATIONS: tuple[str, ...] = (JSON, JSON_LD)

JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"


@dataclass(frozen=True)
class MediaRange:
    type: str
    subtype: str
    weight: float

    def specificity(self, media_type: str) -> int:
        """How specifically this range names ``media_type``: -1 if it does not match."""
        wanted_type, _, wanted_subtype = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 0
        if self.type == wanted_type and self.subtype == "*":
            return 1
        if self.type == wanted_type and self.subtype == wanted_subtype:
            return 2
        return -1


def parse_accept(header: str) -> list[MediaRange]:
    """Parse an Accept header; a malformed weight keeps the default 1 (RFC 9110 5.3.1)."""
    ranges: list[MediaRange] = []
    for item in header.split(","):
        parts = [part.strip() for part in item.split(";")]
        media = parts[0].lower()
        if "/" not in media:
            continue
        main, _, sub = media.partition("/")
        weight = 1.0
        for parameter in parts[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    parsed = float(value.strip())
                except ValueError:
                    continue
                if 0.0 <= parsed <= 1.0:
                    weight = parsed
        ranges.append(MediaRange(main.strip(), sub.strip(), weight))
    return ranges


def choose_representation(accept: str | None, offered: Sequence[str]) -> str:
    """The representation to answer with; raises :class:`NotAcceptableError` (406) if none fits."""
    if accept is None or not accept.strip():
        return offered[0]
    ranges = parse_accept(accept)
    best: tuple[float, int] | None = None
    chosen: str | None = None
    for position, media_type in enumerate(offered):
        matches = [(r.specificity(media_type), r.weight) for r in ranges]
        matches = [m for m in matches if m[0] >= 0]
        if not matches:
            continue
        weight = max(matches)[1]
        if weight <= 0.0:
            continue
        rank = (weight, -position)
        if best is None or rank > best:
            best, chosen = rank, media_type
    if chosen is None:
        raise NotAcceptableError(
            f"none of the offered representations ({', '.join(offered)}) is acceptable "
            f"for Accept: {accept}"
        )
    return chosen


def media_type_of(content_type: str | None) -> str | None:
    """``application/json; charset=utf-8`` → ``application/json``."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


_LINK_PART = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def context_from_link_header(header: str | None) -> str | None:
    """The @context URL of a ``Link: <url>; rel="http://www.w3.org/ns/json-ld#context"``.

    More than one JSON-LD context link is a client error (6.3.5).
    """
    if not header:
        return None
    found: list[str] = []
    for match in _LINK_PART.finditer(header):
        url, params = match.group(1).strip(), match.group(2)
        rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', params)
        if any(rel.strip() == JSONLD_CONTEXT_REL for rel in rels):
            found.append(url)
    if len(found) > 1:
        raise BadRequestDataError("more than one JSON-LD @context Link header was given")
    return found[0] if found else None


def link_header(context_url: str) -> str:
    """The Link header value pointing a JSON response at its @context."""
    return f'<{context_url}>; rel="{JSONLD_CONTEXT_REL}"; type="{JSON_LD}"'


def prefers_body_json(prefer: str | None) -> bool:
    """``Prefer: body=json`` (6.3.6): leave the @context out of a GeoJSON body."""
    if not prefer:
        return False
    return any(part.strip().lower() == "body=json" for part in prefer.split(","))


#: A preference (RFC 7240 2): a token, an optional ``=`` value (token or quoted string),
#: then its own ``;`` parameters, which do not change which preference it is.
_PREFERENCE = re.compile(
    r'\s*(?P<name>[^\s=;,"]+)\s*(?:=\s*(?P<value>"(?:[^"\\]|\\.)*"|[^\s;,"]*))?'
    r'(?P<parameters>(?:\s*;\s*[^;,"]*(?:"(?:[^"\\]|\\.)*")?)*)\s*(?:,|$)'
)
#: ``Prefer: ngsi-ld=<version>`` (6.3.6): the API version whose representation a client wants.
VERSION_PREFERENCE = "ngsi-ld"
_VERSION = re.compile(r"1\.\d+(?:\.\d+)?")


def preferences(prefer: str | None) -> dict[str, str]:
    """The preferences of a Prefer header (RFC 7240): names lower-cased (a field name is
    case-insensitive), values unquoted ('' when absent); the first of a name wins."""
    found: dict[str, str] = {}
    position = 0
    text = prefer or ""
    while position < len(text):
        match = _PREFERENCE.match(text, position)
        if match is None or match.end() == position:
            comma = text.find(",", position)  # not a preference: on to the next one
            if comma < 0:
                break
            position = comma + 1
            continue
        position = match.end()
        value = match.group("value") or ""
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.setdefault(match.group("name").lower(), value)
    return found


def preferred_version(prefer: str | None) -> str | None:
    """The NGSI-LD version a ``Prefer: ngsi-ld=…`` header names, if it names one (1.x)."""
    version = preferences(prefer).get(VERSION_PREFERENCE)
    return version if version and _VERSION.fullmatch(version) else None
