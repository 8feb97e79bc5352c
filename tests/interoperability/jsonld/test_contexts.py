"""@context resolution: bundled core contexts, remote contexts over real HTTP, caching."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cityos_interoperability.ngsild.errors import (
    BadRequestDataError,
    LdContextNotAvailableError,
)
from cityos_interoperability.ngsild.jsonld.context import ContextResolver
from cityos_interoperability.ngsild.jsonld.documents import (
    CORE_CONTEXT_URLS,
    ContextDocumentLoader,
    bundled_document,
    core_context_url,
)

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = NGSI_LD + "default-context/"


class ContextServer:
    """A real HTTP server answering context documents, counting requests per path."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                time.sleep(server.delay)
                body = server.documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/ld+json")
                self.end_headers()
                self.wfile.write(body or b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def context_server() -> Iterator[ContextServer]:
    server = ContextServer()
    try:
        yield server
    finally:
        server.close()


def resolver(**loader_options: float) -> ContextResolver:
    return ContextResolver(ContextDocumentLoader(**loader_options), core_context_url("1.8"))


@pytest.mark.parametrize("url", sorted(CORE_CONTEXT_URLS))
def test_core_contexts_are_bundled_and_declare_the_core_terms(url: str) -> None:
    context = bundled_document(url)["@context"]
    for term in ("Property", "Relationship", "GeoProperty", "observedAt", "location"):
        assert term in context, (url, term)
    terms = ContextResolver(ContextDocumentLoader(), url).core
    assert terms.expand("location") == NGSI_LD + "location"
    assert terms.expand("temperature") == DEFAULT + "temperature"


def test_core_context_is_never_fetched() -> None:
    loader = ContextDocumentLoader(timeout_seconds=0.2)
    terms = ContextResolver(loader, core_context_url("1.9")).resolve(
        [core_context_url("1.9"), {"brand": "https://example.org/brand"}]
    )
    assert terms.expand("brand") == "https://example.org/brand"
    assert loader.cached_urls() == []  # nothing was fetched from the network


def test_user_terms_expand_and_compact_back() -> None:
    terms = resolver().resolve({"brandName": "https://example.org/brandName"})
    assert terms.expand("brandName") == "https://example.org/brandName"
    assert terms.compact("https://example.org/brandName") == "brandName"
    assert terms.compact(DEFAULT + "speed") == "speed"
    assert terms.compact("https://other.example/x") == "https://other.example/x"
    core_only = resolver().core
    assert core_only.compact("https://example.org/brandName") == "https://example.org/brandName"


def test_remote_context_is_fetched_once_and_cached(context_server: ContextServer) -> None:
    context_server.documents["/ctx.jsonld"] = json.dumps(
        {"@context": {"brandName": "https://example.org/brandName"}}
    ).encode()
    url = context_server.base + "/ctx.jsonld"
    loader = ContextDocumentLoader()
    contexts = ContextResolver(loader, core_context_url("1.8"))
    assert contexts.resolve(url).expand("brandName") == "https://example.org/brandName"
    assert contexts.resolve(url).expand("brandName") == "https://example.org/brandName"
    assert context_server.hits["/ctx.jsonld"] == 1
    assert url in loader.cached_urls()


def test_expired_remote_context_is_fetched_again(context_server: ContextServer) -> None:
    context_server.documents["/ctx.jsonld"] = b'{"@context": {"a": "https://example.org/a"}}'
    url = context_server.base + "/ctx.jsonld"
    loader = ContextDocumentLoader(ttl_seconds=0.0)
    loader.load(url)
    loader.load(url)
    assert context_server.hits["/ctx.jsonld"] == 2


def test_unreachable_context_is_504_ld_context_not_available() -> None:
    with pytest.raises(LdContextNotAvailableError) as caught:
        resolver(timeout_seconds=0.5).resolve("http://127.0.0.1:9/nothing.jsonld")
    assert caught.value.status == 504


def test_missing_context_is_504(context_server: ContextServer) -> None:
    with pytest.raises(LdContextNotAvailableError):
        resolver().resolve(context_server.base + "/absent.jsonld")


def test_slow_context_times_out_quickly(context_server: ContextServer) -> None:
    context_server.documents["/slow.jsonld"] = b'{"@context": {}}'
    context_server.delay = 2.0
    started = time.monotonic()
    with pytest.raises(LdContextNotAvailableError):
        resolver(timeout_seconds=0.3).resolve(context_server.base + "/slow.jsonld")
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("path", "body"),
    [("/not-json.jsonld", b"this is { not json"), ("/no-context.jsonld", b'{"note": "x"}')],
)
def test_retrieved_but_invalid_context_is_bad_request_data(
    context_server: ContextServer, path: str, body: bytes
) -> None:
    context_server.documents[path] = body
    with pytest.raises(BadRequestDataError):
        resolver().resolve(context_server.base + path)


def test_invalid_inline_context_is_bad_request_data() -> None:
    with pytest.raises(BadRequestDataError):
        resolver().resolve({"x": {"@id": 5}})


def test_mapped_context_url_is_fetched_from_its_mirror(context_server: ContextServer) -> None:
    context_server.documents["/mirror/ctx.jsonld"] = b'{"@context": {"a": "https://ex.org/a"}}'
    published = "https://contexts.example.org/published/ctx.jsonld"
    loader = ContextDocumentLoader(
        url_map={"https://contexts.example.org/published/": context_server.base + "/mirror/"}
    )
    terms = ContextResolver(loader, core_context_url("1.8")).resolve(published)
    assert terms.expand("a") == "https://ex.org/a"
    assert context_server.hits["/mirror/ctx.jsonld"] == 1
    assert loader.cached_urls() == [published]


def test_scoped_context_in_a_user_context_is_refused() -> None:
    with pytest.raises(BadRequestDataError):
        resolver().resolve(
            {"a": {"@id": "https://ex.org/a", "@context": {"b": "https://ex.org/b"}}}
        )
