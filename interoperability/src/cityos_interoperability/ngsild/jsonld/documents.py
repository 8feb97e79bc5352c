"""Where JSON-LD @context documents come from: the package, the broker's store, or HTTP.

The ETSI core contexts are package data and are never fetched (``core/README.md`` says
where they come from). Contexts the broker hosts (``/jsonldContexts``) are looked up
through a callback. Any other URL is fetched over HTTP with a short timeout, a size cap and
a time-to-live cache; a failure is :class:`LdContextNotAvailableError` (503), which the API
answers with, never an internal error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import httpx
import orjson

from cityos_interoperability.ngsild.errors import InvalidLdContextError, LdContextNotAvailableError

CORE_CONTEXT_URLS: Mapping[str, str] = {
    f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld": (
        f"ngsi-ld-core-context-v{version}.jsonld"
    )
    for version in ("1.6", "1.8", "1.9")
}

#: Older published versions resolve to the closest bundled one rather than being fetched.
CORE_CONTEXT_ALIASES: Mapping[str, str] = {
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld": "1.8",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld": "1.6",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.4.jsonld": "1.6",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.5.jsonld": "1.6",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld": "1.8",
}


#: Documents the core contexts themselves refer to, bundled for the same reason.
BUNDLED_DEPENDENCIES: Mapping[str, str] = {
    "https://w3id.org/security/data-integrity/v2": "security-data-integrity-v2.jsonld",
}


def core_context_url(version: str) -> str:
    return f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld"


def is_core_context(url: str) -> bool:
    return url in CORE_CONTEXT_URLS or url in CORE_CONTEXT_ALIASES


def is_bundled(url: str) -> bool:
    return is_core_context(url) or url in BUNDLED_DEPENDENCIES


@cache
def bundled_document(url: str) -> dict[str, Any]:
    """The bundled document for ``url`` (a core context URL or one it depends on)."""
    if url in CORE_CONTEXT_ALIASES:
        url = core_context_url(CORE_CONTEXT_ALIASES[url])
    name = CORE_CONTEXT_URLS.get(url) or BUNDLED_DEPENDENCIES[url]
    data = files("cityos_interoperability.ngsild.jsonld").joinpath("core", name).read_bytes()
    document = orjson.loads(data)
    if not isinstance(document, dict):
        raise TypeError(f"bundled core context {name} is not a JSON object")
    return document


@dataclass
class _Cached:
    document: dict[str, Any]
    expires_at: float


#: Looks up a context the broker hosts itself; None when the URL is not one of them.
HostedContextLookup = Callable[[str], "dict[str, Any] | None"]


class ContextDocumentLoader:
    """A pyld document loader: core contexts from the package, others fetched and cached."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 3.0,
        ttl_seconds: float = 3600.0,
        max_bytes: int = 1_000_000,
        max_entries: int = 1024,
        hosted: HostedContextLookup | None = None,
        url_map: Mapping[str, str] | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._ttl = ttl_seconds
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._hosted = hosted
        # Longest prefix first: a URL is fetched from its mirror, cached under its own name.
        self._url_map = sorted((url_map or {}).items(), key=lambda item: -len(item[0]))
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds), follow_redirects=True, max_redirects=3
        )

    def close(self) -> None:
        self._client.close()

    def __call__(self, url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """pyld's loader protocol: a remote document dict."""
        return {"contextUrl": None, "documentUrl": url, "document": self.load(url)}

    def load(self, url: str) -> dict[str, Any]:
        """The JSON document at ``url``; raises :class:`LdContextNotAvailableError`."""
        if is_bundled(url):
            return bundled_document(url)
        if self._hosted is not None:
            hosted = self._hosted(url)
            if hosted is not None:
                return hosted
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None and cached.expires_at > now:
            return cached.document
        document = self._fetch(url)
        with self._lock:
            if len(self._cache) >= self._max_entries:
                oldest = min(self._cache, key=lambda key: self._cache[key].expires_at)
                del self._cache[oldest]
            self._cache[url] = _Cached(document, now + self._ttl)
        return document

    def cached_urls(self) -> list[str]:
        """URLs of the fetched contexts currently cached (for ``/jsonldContexts``)."""
        now = time.monotonic()
        with self._lock:
            return [url for url, entry in self._cache.items() if entry.expires_at > now]

    def cached_document(self, url: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._cache.get(url)
        return None if entry is None else entry.document

    def evict(self, url: str) -> bool:
        """Drop a fetched context from the cache; True if it was there."""
        with self._lock:
            return self._cache.pop(url, None) is not None

    def reload(self, url: str) -> dict[str, Any]:
        """Fetch ``url`` again now, replacing the cached copy."""
        self.evict(url)
        return self.load(url)

    def _source(self, url: str) -> str:
        for prefix, replacement in self._url_map:
            if url.startswith(prefix):
                return replacement + url[len(prefix) :]
        return url

    def _fetch(self, url: str) -> dict[str, Any]:
        source = self._source(url)
        if not source.startswith(("http://", "https://")):
            raise LdContextNotAvailableError(f"@context {url!r} is not an http(s) URL")
        try:
            with self._client.stream(
                "GET", source, headers={"Accept": "application/ld+json, application/json"}
            ) as response:
                if response.status_code != 200:
                    raise LdContextNotAvailableError(
                        f"@context {url} answered HTTP {response.status_code}"
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise LdContextNotAvailableError(
                            f"@context {url} is larger than {self._max_bytes} bytes"
                        )
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise LdContextNotAvailableError(
                f"@context {url} could not be retrieved: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            document = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:
            raise InvalidLdContextError(f"@context {url} is not JSON: {exc}") from exc
        if not isinstance(document, dict) or "@context" not in document:
            raise InvalidLdContextError(f"@context {url} is not a JSON-LD context document")
        return document
