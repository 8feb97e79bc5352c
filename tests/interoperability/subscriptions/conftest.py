"""Fixtures of the subscription tests: a real HTTP receiver on loopback, the platform.

``receiver`` is a threaded HTTP server that records every request (path, headers, JSON
body) and answers with the status the test sets; ``stalled_receiver`` accepts connections
and never answers (a receiver that hangs); ``notifying_client`` is the whole application
(knowledge + interoperability, in-memory bus) started with its consumers and notifier,
with short notification timeouts and back-off so that failures show quickly.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.embedded import EmbeddedPostgres
from cityos.layers import load_layers
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from tests.fixtures.interoperability import API_LAYERS

NOTIFIER_ENVIRONMENT = {
    "CITYOS_INTEROP_NOTIFICATION_TIMEOUT_SECONDS": "2",
    "CITYOS_INTEROP_NOTIFICATION_BACKOFF_SECONDS": "0.1",
    "CITYOS_INTEROP_NOTIFICATION_ATTEMPTS": "2",
    "CITYOS_INTEROP_PERIODIC_TICK_SECONDS": "0.2",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Receiver:
    """A notification receiver: what it got, and the status it answers with."""

    url: str
    status: int = 200
    requests: list[Received] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests arrived (fails the test after ``timeout``)."""
        return self.wait_until(lambda got: len(got) >= count, timeout)

    def wait_until(
        self, done: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Wait until ``done(requests)`` holds (fails the test after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while not done(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {len(self.requests)} notifications arrived")
                self.condition.wait(left)
            return list(self.requests)

    def quiet_for(self, seconds: float) -> list[Received]:
        """What arrived after waiting ``seconds`` (to check nothing more comes)."""
        time.sleep(seconds)
        with self.condition:
            return list(self.requests)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with receiver.condition:
                receiver.requests.append(
                    Received(
                        self.path, dict(self.headers.items()), json.loads(raw), time.monotonic()
                    )
                )
                receiver.condition.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Receiver("")))
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/notify")
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stalled_receiver() -> Iterator[str]:
    """URL of a receiver that accepts TCP connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/notify"
    finally:
        stop.set()
        thread.join(2)
        for connection in accepted:
            connection.close()
        listener.close()


@pytest.fixture(scope="module")
def notifying_client(
    postgres_server: EmbeddedPostgres, interop_template: str
) -> Iterator[TestClient]:
    """The application with its notifier running (short timeouts and back-off).

    One per test module: tests keep apart by using entity types of their own.
    """
    with platform_client(postgres_server, interop_template, NOTIFIER_ENVIRONMENT) as client:
        yield client


@contextmanager
def platform_client(
    postgres_server: EmbeddedPostgres, template: str, environment: dict[str, str]
) -> Iterator[TestClient]:
    """The started application on a fresh copy of ``template``, built with ``environment``."""
    name = f"test_io_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name, template=template)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for variable, value in environment.items():
                patch.setenv(variable, value)
            platform = build_platform(
                PlatformSettings(env="development", auth="off"),
                load_layers(API_LAYERS),
                database_url=postgres_server.url(name),
                bus=MemoryBus(),
            )
        with TestClient(create_app(platform)) as client:
            yield client
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def entity_type() -> str:
    """An entity type no other test uses."""
    return f"Thing{uuid.uuid4().hex[:10]}"
