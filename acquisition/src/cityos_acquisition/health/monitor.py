"""Tracks each device's activity and raises ``no_data`` when one falls silent.

The ingestion pipeline reports every accepted message (:meth:`HealthMonitor.record`). A
device with an expected interval (``expected_interval`` on the device or its group) that
has sent nothing for longer than that raises one ``no_data`` event on
``acquisition.devices.v1``; when it speaks again, a ``health`` event says it recovered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cityos_acquisition.ingest.inbound import Inbound
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.mapping.observation import Observation
from cityos_acquisition.registry.service import Registry
from cityos_kernel.bus.port import Bus, Record
from cityos_kernel.events.payloads import DeviceEventV1
from cityos_kernel.events.topics import DEVICES

logger = logging.getLogger(__name__)

#: Weight of the newest interval in the exponential moving average of the message rate.
RATE_SMOOTHING = 0.2
_WATCHED = {"batteryLevel": "battery_level", "rssi": "rssi", "snr": "snr"}


@dataclass
class DeviceHealth:
    device_id: str
    tenant: str
    expected_interval: timedelta | None
    last_seen: datetime | None = None
    messages: int = 0
    #: Messages per minute, smoothed.
    rate_per_minute: float | None = None
    silent: bool = False
    #: Since when a device that has not spoken yet is expected to.
    watched_since: datetime | None = None
    readings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "tenant": self.tenant,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "messages": self.messages,
            "rate_per_minute": round(self.rate_per_minute, 3) if self.rate_per_minute else None,
            "expected_interval_s": self.expected_interval.total_seconds()
            if self.expected_interval
            else None,
            "status": "no_data" if self.silent else "ok",
            **self.readings,
        }


class HealthMonitor:
    """A background service; also an activity listener of the ingestion pipeline."""

    name = "acquisition-health"

    def __init__(
        self,
        registry: Registry,
        bus: Bus,
        *,
        check_interval: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._bus = bus
        self._check_interval = check_interval
        self._clock = clock
        self._devices: dict[tuple[str, str], DeviceHealth] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- activity -----------------------------------------------------------------------
    def record(
        self, profile: DeviceProfile, inbound: Inbound, observations: list[Observation]
    ) -> None:
        recovered = None
        with self._lock:
            health = self._entry(profile)
            now = inbound.received_at
            if health.last_seen is not None:
                gap = max((now - health.last_seen).total_seconds(), 1e-3)
                rate = 60.0 / gap
                previous = health.rate_per_minute
                health.rate_per_minute = (
                    rate if previous is None else previous + RATE_SMOOTHING * (rate - previous)
                )
            health.last_seen = now
            health.messages += 1
            for observation in observations:
                for attribute in observation.attributes:
                    if attribute.name in _WATCHED:
                        health.readings[_WATCHED[attribute.name]] = attribute.value
            if health.silent:
                health.silent = False
                recovered = health.as_dict()
        if recovered is not None:
            self._publish(profile.tenant, profile.device_id, "health", recovered)

    def _entry(self, profile: DeviceProfile) -> DeviceHealth:
        key = (profile.tenant, profile.device_id)
        health = self._devices.get(key)
        if health is None:
            health = self._devices[key] = DeviceHealth(
                profile.device_id, profile.tenant, profile.expected_interval
            )
        else:
            health.expected_interval = profile.expected_interval
        return health

    def watch(self, profile: DeviceProfile, since: datetime) -> None:
        """Expect messages from a device that has not sent any yet."""
        with self._lock:
            known = (profile.tenant, profile.device_id) in self._devices
            if profile.expected_interval is None and not known:
                return
            health = self._entry(profile)
            if health.last_seen is None and health.watched_since is None:
                health.watched_since = since

    def snapshot(self, tenant: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                health.as_dict()
                for health in self._devices.values()
                if tenant is None or health.tenant == tenant
            ]

    # -- silence detection ----------------------------------------------------------------
    def check_silence(self) -> list[str]:
        """Raise ``no_data`` for newly silent devices; returns their ids."""
        now = self._clock()
        newly_silent: list[DeviceHealth] = []
        with self._lock:
            for health in self._devices.values():
                reference = health.last_seen or health.watched_since
                if health.silent or health.expected_interval is None or reference is None:
                    continue
                if now - reference > health.expected_interval:
                    health.silent = True
                    newly_silent.append(health)
            details = [(h.tenant, h.device_id, h.as_dict()) for h in newly_silent]
        for tenant, device_id, detail in details:
            logger.warning("device %s has been silent since %s", device_id, detail["last_seen"])
            self._publish(tenant, device_id, "no_data", detail)
        return [device_id for _, device_id, _ in details]

    def _publish(self, tenant: str, device_id: str, kind: Any, details: dict[str, Any]) -> None:
        event = DeviceEventV1(device_id=device_id, event=kind, details=details)
        envelope = DEVICES.envelope(event, source="acquisition:health", tenant=tenant)
        self._bus.publish([Record(DEVICES.name, device_id, DEVICES.encode(envelope))])

    def on_device_event(self, event: DeviceEventV1, tenant: str) -> None:
        """Registry changes: watch new devices, follow changed intervals, forget deleted ones."""
        if event.event == "deleted":
            with self._lock:
                self._devices.pop((tenant, event.device_id), None)
            return
        record = self._registry.store.get_device(tenant, event.device_id)
        if record is not None:
            self.watch(self._registry.profile(record), self._clock())

    # -- service ----------------------------------------------------------------------------
    def start(self) -> None:
        started = self._clock()
        try:
            records = self._registry.store.all_devices()
        except Exception:
            # A registry that cannot be read now must not stop the platform; devices are
            # watched from their first message on.
            logger.exception("cannot list devices to watch; watching active devices only")
            records = []
        for record in records:
            try:
                self.watch(self._registry.profile(record), started)
            except Exception:
                logger.exception("cannot watch device %s", record.device_id)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._check_interval):
            try:
                self.check_silence()
            except Exception:
                logger.exception("device silence check failed; trying again")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
