"""The repository's static checks run as tests, so the one test command covers them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    assert executable, f"{argv[0]} is not installed in the workspace environment"
    return subprocess.run(
        [executable, *argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_import_contracts_hold() -> None:
    """lint-imports: layer order, acquisition/knowledge independent, interop without acquisition."""
    result = run_tool("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_check() -> None:
    result = run_tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run_tool("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_on_sources() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_generic_top_level_packages() -> None:
    """A top-level package named platform/utils/common/config would shadow or confuse."""
    forbidden = {"platform", "utils", "common", "config", "core"}
    for src in REPO.glob("**/src"):
        if ".venv" in src.parts:
            continue
        names = {child.name for child in src.iterdir() if child.is_dir()}
        assert not names & forbidden, f"{src} holds {names & forbidden}"
