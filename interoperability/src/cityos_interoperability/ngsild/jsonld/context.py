"""Resolving a request's @context into term ↔ IRI mappings, with pyld.

NGSI-LD bodies have a fixed shape (entity, attributes, sub-attributes), so the API does not
run a full JSON-LD expansion per request: it asks pyld once per (context, term) what the
term expands to, and once per (context, IRI) what it compacts to, and caches both. pyld
does the JSON-LD work (remote and scoped contexts, ``@protected``, ``@vocab``, prefixes);
the cache makes a warm request cost a dictionary look-up per attribute name.

The core context is always part of the effective context, last, unless the client's
context already names a core context (appending another version of a ``@protected`` core
context would be a protected-term redefinition).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson
from cachetools import LRUCache
from pyld import jsonld  # type: ignore[import-untyped]
from pyld.context_resolver import ContextResolver as PyldContextResolver  # type: ignore[import-untyped]

from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    InvalidLdContextError,
    LdContextNotAvailableError,
    NgsiLdError,
)
from cityos_interoperability.ngsild.jsonld.documents import ContextDocumentLoader, is_core_context

#: The placeholder node id used to ask pyld how a term expands.
_PROBE_ID = "urn:cityos:probe"

#: How a client may give a @context: one URL, one inline object, or a list of them.
ContextValue = str | dict[str, Any] | list[Any]


def _as_list(context: ContextValue | None) -> list[Any]:
    if context is None:
        return []
    if isinstance(context, list):
        return list(context)
    return [context]


class TermMap:
    """Term ↔ IRI mappings of one effective @context; thread-safe, filled lazily."""

    def __init__(self, resolver: ContextResolver, context: list[Any], user_context: Any) -> None:
        self._resolver = resolver
        self.context = context
        #: The @context as the client gave it (what a JSON-LD response body echoes).
        self.user_context = user_context
        self._expanded: dict[str, str] = {}
        self._compacted: dict[str, str] = {}
        self._lock = threading.Lock()

    def expand(self, term: str) -> str:
        """The IRI of an attribute name, entity type or vocab value (vocab-relative)."""
        found = self._expanded.get(term)
        if found is not None:
            return found
        result = self._resolver.run(
            "expand", {"@context": self.context, "@id": _PROBE_ID, "@type": term}
        )
        types = result[0].get("@type", []) if result else []
        iri = types[0] if types else term
        with self._lock:
            self._expanded[term] = iri
        return str(iri)

    def compact(self, iri: str) -> str:
        """The shortest term of ``iri`` in this context (the IRI itself if there is none)."""
        found = self._compacted.get(iri)
        if found is not None:
            return found
        result = self._resolver.run("compact", {"@id": _PROBE_ID, "@type": iri}, self.context)
        term = result.get("type", result.get("@type", iri))
        if isinstance(term, list):
            term = term[0]
        with self._lock:
            self._compacted[iri] = str(term)
        return str(term)


class ContextResolver:
    """Builds (and caches) :class:`TermMap` objects for the @context values clients send."""

    def __init__(
        self, loader: ContextDocumentLoader, core_context_url: str, *, max_contexts: int = 256
    ) -> None:
        self.loader = loader
        self.core_context_url = core_context_url
        self._max_contexts = max_contexts
        self._maps: OrderedDict[bytes, TermMap] = OrderedDict()
        self._lock = threading.Lock()
        # pyld caches processed remote contexts by URL; a cache of our own lets
        # :meth:`forget` honour a deleted or reloaded context.
        self._pyld_cache: LRUCache[Any, Any] = LRUCache(maxsize=512)

    @property
    def core(self) -> TermMap:
        return self.resolve(None)

    def cached(self, user_context: ContextValue | None) -> TermMap | None:
        """The term map of ``user_context`` if it was resolved before (no I/O, no pyld)."""
        try:
            key = orjson.dumps(self._items(user_context), option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        with self._lock:
            return self._maps.get(key)

    def _items(self, user_context: ContextValue | None) -> list[Any]:
        items = _as_list(user_context)
        if not any(isinstance(item, str) and is_core_context(item) for item in items):
            items.append(self.core_context_url)
        return items

    def resolve(self, user_context: ContextValue | None) -> TermMap:
        """The term map of ``user_context`` plus the core context.

        Raises :class:`LdContextNotAvailableError` (a remote context cannot be fetched) or
        :class:`BadRequestDataError` (the context is not a valid JSON-LD context).
        """
        for item in _as_list(user_context):
            if not isinstance(item, str | dict):
                raise BadRequestDataError("@context members must be URLs or JSON objects")
            if isinstance(item, dict) and any(
                isinstance(definition, dict) and "@context" in definition
                for definition in item.values()
            ):
                raise BadRequestDataError("scoped contexts are not allowed in a user @context")
        items = self._items(user_context)
        key = orjson.dumps(items, option=orjson.OPT_SORT_KEYS)
        with self._lock:
            found = self._maps.get(key)
            if found is not None:
                self._maps.move_to_end(key)
                return found
        # Process the context once now, so that an unavailable or invalid one fails the
        # request that brought it, whatever terms it ends up using.
        self.run("expand", {"@context": items, "@id": _PROBE_ID})
        term_map = TermMap(self, items, user_context)
        with self._lock:
            self._maps[key] = term_map
            while len(self._maps) > self._max_contexts:
                self._maps.popitem(last=False)
        return term_map

    def forget(self) -> None:
        """Drop every processed context (after a hosted or cached context changed)."""
        with self._lock:
            self._maps.clear()
            self._pyld_cache.clear()

    def run(self, operation: str, document: dict[str, Any], context: Any = None) -> Any:
        """Run a pyld operation with our loader, translating its errors to NGSI-LD ones."""
        options = {
            "documentLoader": self.loader,
            "contextResolver": PyldContextResolver(self._pyld_cache, self.loader),
        }
        try:
            if operation == "expand":
                return jsonld.expand(document, options)
            return jsonld.compact(document, {"@context": context}, options)
        except jsonld.JsonLdError as exc:
            raise _translate(exc) from exc
        except ValueError as exc:  # pyld's IRI resolver, e.g. for an empty context URL
            raise InvalidLdContextError(f"invalid JSON-LD @context: {exc}") from exc


def _translate(exc: BaseException) -> NgsiLdError:
    """The NGSI-LD error behind a pyld error (our loader's, or an invalid context)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NgsiLdError):
            return seen
        seen = seen.__cause__ or seen.__context__
    code = getattr(exc, "code", None)
    if code == "loading remote context failed":
        return LdContextNotAvailableError(f"a remote @context could not be loaded: {exc}")
    return InvalidLdContextError(f"invalid JSON-LD @context: {code or exc}")
