"""`cityos up` as a newcomer runs it: embedded PostgreSQL and Mosquitto, then Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cityos.embedded.ports import free_port, port_is_free


@dataclass
class RunningPlatform:
    process: subprocess.Popen[str]
    base: str
    state_dir: Path
    mqtt_port: int

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr else ""


def wait_for_health(platform: RunningPlatform, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if platform.process.poll() is not None:
            raise AssertionError(f"cityos up exited early:\n{platform.stderr()}")
        try:
            if httpx.get(f"{platform.base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("cityos up did not answer /health in time")


@contextmanager
def cityos_up(*extra: str) -> Iterator[RunningPlatform]:
    state_dir = Path(tempfile.mkdtemp(prefix="cityos-up-"))
    state_dir.chmod(0o755)  # the embedded PostgreSQL runs as `postgres` when we are root
    port, mqtt_port = free_port(), free_port()
    executable = shutil.which("cityos", path=str(Path(sys.executable).parent))
    assert executable
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    command = [executable, "up", "--port", str(port), "--state-dir", str(state_dir)]
    process = subprocess.Popen(
        [*command, "--mqtt-port", str(mqtt_port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    platform = RunningPlatform(process, f"http://127.0.0.1:{port}", state_dir, mqtt_port)
    try:
        wait_for_health(platform)
        yield platform
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.slow
def test_up_serves_health_ready_metrics_and_stops_on_ctrl_c() -> None:
    with cityos_up() as platform:
        ready = httpx.get(f"{platform.base}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert {"database", "bus", "mqtt"} <= set(checks)
        assert "PostGIS" in checks["database"]["detail"]
        assert checks["mqtt"]["status"] == "up"
        metrics = httpx.get(f"{platform.base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert 'cityos_http_requests_total{method="GET",route="/ready",status="200"}' in (
            metrics.text
        )
        assert not port_is_free(platform.mqtt_port), "the embedded Mosquitto should listen"

        started = time.monotonic()
        platform.process.send_signal(signal.SIGINT)
        returncode = platform.process.wait(timeout=15)
        elapsed = time.monotonic() - started
        assert returncode == 0, platform.stderr()
        assert elapsed < 10, f"took {elapsed:.1f}s to stop"
        assert port_is_free(platform.mqtt_port), "Mosquitto kept running after exit"
        postgres_pid = platform.state_dir / "postgres" / "postmaster.pid"
        assert not postgres_pid.exists(), "PostgreSQL kept running after exit"


@pytest.mark.e2e
@pytest.mark.slow
def test_simulated_sensors_become_ngsi_ld_entities() -> None:
    """Device traffic crosses every layer: MQTT → acquisition → bus → knowledge → NGSI-LD."""
    with cityos_up("--simulate", "6") as platform:
        deadline = time.monotonic() + 60
        entities: list[dict[str, object]] = []
        while time.monotonic() < deadline and not entities:
            answer = httpx.get(
                f"{platform.base}/ngsi-ld/v1/entities",
                params={"type": "WeatherObserved", "limit": 10},
                timeout=5,
            )
            assert answer.status_code == 200, answer.text
            entities = answer.json()
            time.sleep(0.5)
        assert entities, "no simulated WeatherObserved entity reached the NGSI-LD API"
        weather = entities[0]
        assert str(weather["id"]).startswith("urn:ngsi-ld:WeatherObserved:")
        temperature = weather["temperature"]
        assert isinstance(temperature, dict)
        assert temperature["unitCode"] == "CEL"
        assert isinstance(temperature["value"], int | float)
        devices = httpx.get(f"{platform.base}/iot/devices", timeout=5).json()
        assert devices["count"] >= 1
        platform.process.send_signal(signal.SIGTERM)
        assert platform.process.wait(timeout=15) == 0, platform.stderr()
