"""Database URL handling shared by every layer that talks to PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from sqlalchemy import Dialect, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

#: The driver the platform uses (psycopg2; SQLAlchemy 2.1 would otherwise pick psycopg 3).
DRIVER = "postgresql+psycopg2"


def sqlalchemy_url(url: str) -> str:
    """Turn ``postgresql://…`` (what operators write) into the SQLAlchemy URL with our driver."""
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql", "postgresql+psycopg2"}:
        return urlunsplit((DRIVER, *parts[1:]))
    raise ValueError(f"not a PostgreSQL URL (postgresql://…): scheme {parts.scheme!r}")


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy-style URL back into one libpq/psycopg2 accepts."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme.startswith("postgres") else parts.scheme
    return urlunsplit((scheme, *parts[1:]))


#: A pooled connection that has been idle (checked in) longer than this many seconds is
#: pinged before it is handed out again; a busier one is trusted (ADR 0066).
IDLE_PING_AFTER = 30.0

_CHECKED_IN_AT = "cityos_checked_in_at"


def create_pooled_engine(
    url: str, *, idle_ping_after: float = IDLE_PING_AFTER, **options: Any
) -> Engine:
    """A SQLAlchemy engine for ``url`` whose pool pings only connections idle too long.

    ``pool_pre_ping`` costs a ``SELECT 1`` round trip on every checkout, as much as a
    short query's own work. Here a connection is pinged only when it has sat in the pool
    for more than ``idle_ping_after`` seconds (where firewalls, server restarts and
    ``idle_session_timeout`` take connections away); if the ping fails the pool replaces
    it transparently. A connection that dies while in steady use raises its disconnect
    error once, SQLAlchemy invalidates the pool, and the next checkout gets a new one.
    ``options`` go to :func:`sqlalchemy.create_engine` (``pool_size``, ``max_overflow``…);
    ``json`` and ``jsonb`` values are decoded by :func:`loads_json` unless
    ``json_deserializer`` says otherwise.
    """
    if options.get("pool_pre_ping"):
        raise ValueError("create_pooled_engine pings idle connections itself; drop pool_pre_ping")
    options.setdefault("json_deserializer", loads_json)
    engine = create_engine(sqlalchemy_url(url), **options)
    ping_idle_connections(engine, idle_ping_after)
    return engine


#: Every digit made "0", every other byte a space: a run of 19 digits may be an integer beyond
#: 64 bits (-9999999999999999999 has 19), which orjson turns into a float and ``json.loads``
#: keeps exact. (A byte table and a substring search: a regular expression costs 10x more.)
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 19


def loads_json(text: str) -> Any:
    """``json.loads`` semantics at orjson's speed: the decoder of the platform's engines.

    psycopg2 decodes every ``json``/``jsonb`` value it reads with the engine's
    ``json_deserializer`` (a page of 20 entity documents took ~0.19 ms in ``json.loads``,
    several times less in orjson). orjson differs from ``json.loads`` on integers beyond 64
    bits (it returns a float) and refuses what it cannot represent (``1e400``, lone
    surrogates): texts with a run of 19 digits, and texts orjson refuses, go to ``json.loads``.
    """
    encoded = text.encode("utf-8", "surrogatepass")
    if _LONG_DIGITS not in encoded.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(encoded)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def ping_idle_connections(engine: Engine, idle_ping_after: float = IDLE_PING_AFTER) -> None:
    """Make ``engine``'s pool ping a connection idle longer than ``idle_ping_after`` seconds."""

    def checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    def checked_out(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        checked_in_at = record.info.pop(_CHECKED_IN_AT, None)
        if checked_in_at is None or time.monotonic() - checked_in_at <= idle_ping_after:
            return  # new, or used recently: trusted
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        except Exception as error:  # any failure of SELECT 1: the connection is unusable
            raise DisconnectionError(f"idle pooled connection failed its ping: {error}") from error

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


class driver_errors_wrapped:  # noqa: N801 - used as a function: ``with driver_errors_wrapped(…)``
    """Driver errors raised inside, wrapped as SQLAlchemy wraps them, for code that runs
    statements on a pooled DBAPI connection itself (the hot paths that skip a SQLAlchemy
    ``Connection``): callers keep handling ``sqlalchemy.exc.DBAPIError`` and its subclasses,
    and a connection the error shows lost is dropped through ``invalidate`` (the pooled
    connection's own) rather than given back to the pool.

    A class rather than a ``@contextmanager`` generator: it is entered for every statement
    of those paths, and a generator's enter and exit cost several times more.
    """

    __slots__ = ("_dbapi_connection", "_dialect", "_invalidate", "_parameters", "_statement")

    def __init__(
        self,
        dialect: Dialect,
        dbapi_connection: Any,
        statement: str,
        parameters: Any,
        invalidate: Callable[[BaseException], None],
    ) -> None:
        self._dialect = dialect
        self._dbapi_connection = dbapi_connection
        self._statement = statement
        self._parameters = parameters
        self._invalidate = invalidate

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        dialect = self._dialect
        errors = dialect.loaded_dbapi.Error
        if error is None or not isinstance(error, errors):
            return  # nothing raised, or not the driver's: it goes on as it is
        disconnected = dialect.is_disconnect(error, self._dbapi_connection, None)
        if disconnected:
            self._invalidate(error)
        raise DBAPIError.instance(
            self._statement,
            self._parameters,
            error,
            errors,
            connection_invalidated=disconnected,
            dialect=dialect,
        ) from error
