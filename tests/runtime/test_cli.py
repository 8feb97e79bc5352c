"""The `cityos` command line, run as users run it (a subprocess of the console script)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cityos


def cityos_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("cityos", path=str(Path(sys.executable).parent))
    assert executable, "the cityos console script is not installed"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    return subprocess.run(
        [executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


def test_version() -> None:
    result = cityos_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cityos {cityos.__version__}"


def test_help_has_a_line_for_every_command() -> None:
    result = cityos_cli("--help")
    assert result.returncode == 0
    lines = [line.strip("│ ").split() for line in result.stdout.splitlines()]
    listed = {words[0] for words in lines if words}
    assert {"up", "serve", "db"} <= listed, result.stdout
    db_help = cityos_cli("db", "--help")
    for command in ("upgrade", "current"):
        assert command in db_help.stdout


def test_db_upgrade_without_a_database_url_says_what_to_set() -> None:
    result = cityos_cli("db", "upgrade")
    assert result.returncode == 2
    assert "CITYOS_DATABASE_URL" in result.stderr


def test_serve_rejects_an_unknown_layer() -> None:
    result = cityos_cli("serve", "billing")
    assert result.returncode == 2
    assert "unknown layer 'billing'" in result.stderr


def test_invalid_configuration_is_a_clear_error() -> None:
    result = cityos_cli("db", "current", env={"CITYOS_BUS": "carrier-pigeon"})
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "bus" in result.stderr


def test_auth_off_in_production_is_refused_at_start() -> None:
    result = cityos_cli(
        "serve", "support", "--port", "1", env={"CITYOS_ENV": "production", "CITYOS_AUTH": "off"}
    )
    assert result.returncode == 1
    assert "CITYOS_AUTH=off is refused" in result.stderr


@pytest.mark.postgres
def test_db_upgrade_and_current(database_url: str) -> None:
    upgraded = cityos_cli("db", "upgrade", env={"CITYOS_DATABASE_URL": database_url})
    assert upgraded.returncode == 0, upgraded.stderr
    assert "platform: empty -> 0001" in upgraded.stdout
    current = cityos_cli("db", "current", env={"CITYOS_DATABASE_URL": database_url})
    assert "platform: 0001" in current.stdout
