"""The compose deployment is valid and speaks the platform's configuration names."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from cityos.layers import LAYER_NAMES
from cityos_kernel.settings import PlatformSettings
from cityos_support.settings import SupportSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"


def test_compose_file_matches_the_compose_specification() -> None:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert tool, "check-jsonschema is a dev dependency"
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_layer_has_a_service_and_migrations_run_first() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for layer in LAYER_NAMES:
        assert services[layer]["command"][:2] == ["serve", layer]
        assert services[layer]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_monitoring_files_mounted_by_compose_exist() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"


def test_compose_uses_only_known_cityos_settings() -> None:
    known = {
        f"CITYOS_{name.upper()}"
        for settings in (PlatformSettings, SupportSettings)
        for name in settings.model_fields
    }
    used = set(re.findall(r"\b(CITYOS_[A-Z_]+):", COMPOSE.read_text()))
    assert used, "compose sets no CITYOS_ variable at all"
    assert used <= known | {"CITYOS_IMAGE"}, used - known
