"""Readiness checks of the dependencies every process may have: database, bus, MQTT."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg2
from paho.mqtt.enums import CallbackAPIVersion

from cityos_kernel.bus.port import Bus
from cityos_kernel.database import libpq_url
from cityos_kernel.layer import ReadinessCheck

CHECK_TIMEOUT = 3.0


def database_check(url: str) -> ReadinessCheck:
    def check() -> str:
        with psycopg2.connect(libpq_url(url), connect_timeout=int(CHECK_TIMEOUT)) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('server_version')")
                (server_version,) = cursor.fetchone() or ("?",)
                cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
                postgis = cursor.fetchone()
            connection.rollback()
        connection.close()
        detail = f"PostgreSQL {server_version}"
        return f"{detail}, PostGIS {postgis[0]}" if postgis else f"{detail}, no PostGIS"

    return ReadinessCheck("database", check)


def bus_check(bus: Bus) -> ReadinessCheck:
    return ReadinessCheck("bus", bus.check)


def mqtt_check(url: str) -> ReadinessCheck:
    """Connects with a real MQTT CONNECT (a TCP connect alone proves little)."""

    def check() -> str:
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError(f"not an mqtt:// URL: {url}")
        connected = threading.Event()
        outcome: list[str] = []
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="",
            protocol=mqtt.MQTTv311,
        )
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            client.tls_set()

        def on_connect(
            client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
        ) -> None:
            outcome.append(str(reason))
            connected.set()

        client.on_connect = on_connect
        client.connect(parts.hostname, parts.port or 1883, keepalive=10)
        client.loop_start()
        try:
            if not connected.wait(CHECK_TIMEOUT):
                raise TimeoutError("no CONNACK from the broker")
            if outcome[0] != "Success":
                raise ConnectionError(f"broker refused: {outcome[0]}")
        finally:
            client.disconnect()
            client.loop_stop()
        return f"{parts.hostname}:{parts.port or 1883} accepted an MQTT connection"

    return ReadinessCheck("mqtt", check)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def run_checks(checks: Sequence[ReadinessCheck]) -> list[CheckResult]:
    """Run checks concurrently, each bounded by a timeout; never raises."""
    if not checks:
        return []
    results: list[CheckResult] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(checks))
    try:
        futures = [(check, pool.submit(check.check)) for check in checks]
        for check, future in futures:
            try:
                results.append(CheckResult(check.name, True, future.result(CHECK_TIMEOUT + 1)))
            except concurrent.futures.TimeoutError:
                results.append(CheckResult(check.name, False, "timed out"))
            except Exception as exc:
                results.append(CheckResult(check.name, False, f"{type(exc).__name__}: {exc}"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results
