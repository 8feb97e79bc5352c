from __future__ import annotations

import io
import logging

import orjson
import pytest

from cityos_kernel.logging import configure_logging, log_context


@pytest.fixture
def restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_production_logs_are_json_with_tenant_and_correlation(restore_root_logger: object) -> None:
    stream = io.StringIO()
    configure_logging(env="production", level="INFO", stream=stream)
    with log_context(tenant="city-a", correlation_id="corr-1"):
        logging.getLogger("cityos.test").info("applied %d observations", 3, extra={"batch": 7})
    entry = orjson.loads(stream.getvalue().strip().splitlines()[-1])
    assert entry["message"] == "applied 3 observations"
    assert entry["tenant"] == "city-a"
    assert entry["correlation_id"] == "corr-1"
    assert entry["batch"] == 7
    assert entry["level"] == "INFO"


def test_development_logs_are_readable(restore_root_logger: object) -> None:
    stream = io.StringIO()
    configure_logging(env="development", level="INFO", stream=stream)
    with log_context(tenant="city-b", correlation_id="corr-2"):
        logging.getLogger("cityos.test").warning("device silent")
    line = stream.getvalue().strip().splitlines()[-1]
    assert "WARNING" in line and "device silent" in line
    assert "tenant=city-b" in line and "correlation_id=corr-2" in line
    assert not line.startswith("{")


def test_configuring_twice_does_not_duplicate_lines(restore_root_logger: object) -> None:
    stream = io.StringIO()
    configure_logging(env="production", stream=stream)
    configure_logging(env="production", stream=stream)
    logging.getLogger("cityos.test").info("once")
    assert stream.getvalue().count('"once"') == 1


def test_default_handler_follows_sys_stderr(
    restore_root_logger: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI run inside a test runner swaps stderr; later lines must not hit a closed file."""
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure_logging(env="production")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    logging.getLogger("cityos.test").warning("after the swap")
    assert '"after the swap"' in second.getvalue()
