"""`cityos up` as a newcomer runs it: embedded PostgreSQL and Mosquitto, then Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from cityos.embedded.ports import free_port, port_is_free


def wait_for_health(base: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"cityos up exited early:\n{process.stderr.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("cityos up did not answer /health in time")


@pytest.mark.e2e
@pytest.mark.slow
def test_up_serves_health_ready_metrics_and_stops_on_ctrl_c() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="cityos-up-"))
    state_dir.chmod(0o755)  # the embedded PostgreSQL runs as `postgres` when we are root
    port, mqtt_port = free_port(), free_port()
    executable = shutil.which("cityos", path=str(Path(sys.executable).parent))
    assert executable
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    process = subprocess.Popen(
        [
            executable,
            "up",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--mqtt-port",
            str(mqtt_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, process)
        ready = httpx.get(f"{base}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert {"database", "bus", "mqtt"} <= set(checks)
        assert "PostGIS" in checks["database"]["detail"]
        assert checks["mqtt"]["status"] == "up"
        metrics = httpx.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert (
            'cityos_http_requests_total{method="GET",route="/ready",status="200"}' in metrics.text
        )
        assert not port_is_free(mqtt_port), "the embedded Mosquitto should listen"

        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=15)
        elapsed = time.monotonic() - started
        assert returncode == 0, process.stderr.read()  # type: ignore[union-attr]
        assert elapsed < 10, f"took {elapsed:.1f}s to stop"
        assert port_is_free(mqtt_port), "Mosquitto kept running after exit"
        postgres_pid = state_dir / "postgres" / "postmaster.pid"
        assert not postgres_pid.exists(), "PostgreSQL kept running after exit"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(state_dir, ignore_errors=True)
