"""Structured logging carrying tenant and correlation id.

Production writes one JSON object per line; development writes readable lines. The tenant
and correlation id come from context variables, so a request handler or a consumer sets
them once (:func:`log_context`) and every log line below it carries them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

tenant_var: ContextVar[str | None] = ContextVar("cityos_tenant", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("cityos_correlation_id", default=None)

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(*, tenant: str | None = None, correlation_id: str | None = None) -> Iterator[None]:
    """Attach a tenant and correlation id to every log line written inside the block."""
    tenant_token = tenant_var.set(tenant)
    correlation_token = correlation_id_var.set(correlation_id)
    try:
        yield
    finally:
        tenant_var.reset(tenant_token)
        correlation_id_var.reset(correlation_token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant = tenant_var.get()
        record.correlation_id = correlation_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the record's extra fields kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "tenant": getattr(record, "tenant", None),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ReadableFormatter(logging.Formatter):
    """Human-readable lines for development, with tenant/correlation when set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [
            f"{name}={value}"
            for name in ("tenant", "correlation_id")
            if (value := getattr(record, name, None))
        ]
        return f"{line} [{' '.join(tags)}]" if tags else line


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    A handler that kept the stream of the moment it was built would write to a closed file
    once that stream is swapped back (a CLI run inside a test runner, captured output).
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(
    *, env: Literal["development", "production"], level: str = "INFO", stream: Any = None
) -> None:
    """Install the platform's log format on the root logger (idempotent)."""
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    handler.setFormatter(JsonFormatter() if env == "production" else ReadableFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_cityos", False):
            root.removeHandler(existing)
    handler._cityos = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO about every connection it opens.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
