"""The pooled engine pings only idle connections, on the real PostgreSQL (ADR 0066)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from cityos_kernel.database import create_pooled_engine
from tests.fixtures.services import terminate_backend

pytestmark = pytest.mark.postgres


@pytest.fixture
def engines(database_url: str) -> Iterator[list[Engine]]:
    created: list[Engine] = []
    yield created
    for engine in created:
        engine.dispose()


def _engine_with_killed_connection(
    engines: list[Engine], url: str, idle_ping_after: float
) -> tuple[Engine, int]:
    """A one-connection pool whose connection has been used, then killed: (engine, old pid)."""
    engine = create_pooled_engine(url, idle_ping_after=idle_ping_after, pool_size=1, max_overflow=0)
    engines.append(engine)
    pid = _backend_pid(engine)
    terminate_backend(url, pid)
    return engine, pid


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_killed_while_idle_beyond_the_threshold_is_replaced(
    database_url: str, engines: list[Engine]
) -> None:
    engine, first = _engine_with_killed_connection(engines, database_url, idle_ping_after=0.05)
    time.sleep(0.1)  # idle longer than the threshold

    second = _backend_pid(engine)  # no error: the ping failed and the pool reconnected

    assert second != first


def test_a_connection_killed_while_in_recent_use_fails_once_then_recovers(
    database_url: str, engines: list[Engine]
) -> None:
    engine, first = _engine_with_killed_connection(engines, database_url, idle_ping_after=3600)

    with pytest.raises(DBAPIError) as raised:  # not pinged: the query meets the dead socket
        _backend_pid(engine)
    assert raised.value.connection_invalidated
    second = _backend_pid(engine)

    assert second != first


def test_pool_pre_ping_is_refused(database_url: str) -> None:
    with pytest.raises(ValueError, match="pool_pre_ping"):
        create_pooled_engine(database_url, pool_pre_ping=True)
