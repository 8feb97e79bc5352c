"""``cityos simulate``: publish realistic device traffic to an MQTT broker at a given rate."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cityos_acquisition.simulator.traffic import (
    SimulatedDevice,
    make_devices,
    message_for,
    provisioning,
)
from cityos_acquisition.transports.mqtt import mqtt_address
from cityos_kernel.errors import CityosError


@dataclass(frozen=True)
class SimulationProgress:
    sent: int
    elapsed: float
    devices: int

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[SimulationProgress], None]


def _post(api_url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    request = urllib.request.Request(  # noqa: S310 - the operator's own platform URL
        api_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code == 409:  # provisioned by an earlier run
            return 409
        raise CityosError(f"provisioning {path} failed: {exc.code} {exc.read()[:300]!r}") from exc


def provision_over_http(
    api_url: str, devices: list[SimulatedDevice], headers: dict[str, str] | None = None
) -> None:
    """Create the simulator's config groups and LoRaWAN devices through ``/iot``."""
    groups, lorawan = provisioning(devices)
    for group in groups:
        _post(api_url, "/iot/groups", {"groups": [group]}, headers or {})
    for device in lorawan:
        _post(api_url, "/iot/devices", {"devices": [device]}, headers or {})


def run_simulation(
    mqtt_url: str,
    *,
    devices: int = 10,
    rate: float = 10.0,
    duration: float | None = None,
    count: int | None = None,
    kinds: list[str] | None = None,
    api_url: str | None = None,
    seed: int = 0,
    prefix: str = "sim",
    progress: ProgressCallback | None = None,
    progress_every: float = 1.0,
    stop: threading.Event | None = None,
) -> SimulationProgress:
    """Publish from ``devices`` simulated devices, ``rate`` messages per second in total.

    Stops after ``count`` messages or ``duration`` seconds (or when ``stop`` is set);
    ``rate <= 0`` publishes as fast as the broker accepts. With ``api_url`` the devices are
    provisioned first (config groups for JSON/UL kinds, LoRaWAN devices one by one).
    """
    fleet = make_devices(devices, kinds, prefix)
    if api_url:
        provision_over_http(api_url, fleet)
    host, port, username, password, tls = mqtt_address(mqtt_url)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="")
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    rng = random.Random(seed)  # noqa: S311 - simulated readings, not secrets
    stop = stop or threading.Event()
    started = time.monotonic()
    last_report = started
    sent = 0
    last_info: mqtt.MQTTMessageInfo | None = None
    try:
        while not stop.is_set():
            if count is not None and sent >= count:
                break
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            if rate > 0:
                due = started + sent / rate
                if due > now:
                    stop.wait(min(due - now, 0.5))
                    continue
            device = fleet[sent % len(fleet)]
            topic, payload = message_for(device, rng, sent // len(fleet))
            last_info = client.publish(topic, payload, qos=1)
            sent += 1
            if progress and now - last_report >= progress_every:
                last_report = now
                progress(SimulationProgress(sent, now - started, len(fleet)))
        if last_info is not None:
            last_info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    final = SimulationProgress(sent, time.monotonic() - started, len(fleet))
    if progress:
        progress(final)
    return final
