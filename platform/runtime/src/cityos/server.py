"""Running a platform behind uvicorn until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import signal
import threading
from collections.abc import Iterator

import uvicorn

from cityos.app import create_app
from cityos.bootstrap import Platform

logger = logging.getLogger(__name__)

#: Seconds uvicorn waits for open requests before closing them at shutdown.
GRACEFUL_SHUTDOWN_SECONDS = 5


class _Server(uvicorn.Server):
    """uvicorn, but Ctrl-C and SIGTERM end with a clean shutdown and exit status 0.

    Recent uvicorn re-raises the signal after its graceful shutdown, which turns Ctrl-C into
    exit 130 and SIGTERM into an immediate death that skips stopping the embedded servers.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def server_stack() -> tuple[str, str]:
    """uvicorn's HTTP parser and event loop: ``httptools`` and ``uvloop`` when importable.

    Both are runtime dependencies (ADR 0050): they serve about half as many requests again
    as ``h11`` and ``asyncio`` on the same CPU. The pure-Python pair stays the fallback
    where a wheel is missing (uvloop has none for Windows).
    """
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return http, loop


def serve_http(platform: Platform, *, host: str, port: int) -> None:
    """Serve until interrupted; the app's lifespan starts and stops the platform."""
    app = create_app(platform)
    http, loop = server_stack()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http,
        loop=loop,
        log_config=None,  # keep the platform's log format
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _Server(config)
    logger.info("serving on http://%s:%d with %s and %s (Ctrl-C to stop)", host, port, http, loop)
    server.run()
    if not server.started:
        raise SystemExit(f"could not serve on {host}:{port}; see the log above")
