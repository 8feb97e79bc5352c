"""The indicators warning rules watch, gathered into :class:`~.rules.Sample` lists.

- ``disk_used_ratio{path}``: used / total of each configured filesystem;
- ``consumer_lag{group,topic}``: the ``cityos_bus_consumer_lag`` gauge;
- ``notification_failures{endpoint}``: failed notifications since the previous round;
- ``deadletter_rate{topic}``: dead letters per minute over the last five minutes;
- ``device_silence_seconds{device}``: how long a device the acquisition layer reported
  silent (``no_data``) has been so.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import cast

from cityos_kernel.bus.consumer import ConsumerSpec, Message
from cityos_kernel.events.envelope import Envelope
from cityos_kernel.events.payloads import DeadLetterV1, DeviceEventV1
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, DEVICES, PLATFORM_DEADLETTER
from cityos_support.monitoring.metrics import CONSUMER_LAG, DEAD_LETTERS_SEEN, NOTIFICATIONS
from cityos_support.monitoring.rules import Sample

Clock = Callable[[], float]


class DeadLetterRate:
    """Dead letters per minute per topic over a sliding window."""

    def __init__(self, *, window_seconds: float = 300.0, clock: Clock = time.time) -> None:
        self._window = window_seconds
        self._clock = clock
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def record(self, topic: str, at: float | None = None) -> None:
        with self._lock:
            self._seen.setdefault(topic, collections.deque()).append(at or self._clock())
        DEAD_LETTERS_SEEN.labels(topic).inc()

    def samples(self) -> list[Sample]:
        now = self._clock()
        found = []
        with self._lock:
            for topic, times in self._seen.items():
                while times and times[0] < now - self._window:
                    times.popleft()
                per_minute = len(times) * 60.0 / self._window
                found.append(Sample("deadletter_rate", per_minute, {"topic": topic}))
        return found


class DeviceSilence:
    """Devices reported silent, and since when."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._silent_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, event: DeviceEventV1, at: datetime) -> None:
        with self._lock:
            if event.event == "no_data":
                last_seen = event.details.get("last_seen")
                since = at.timestamp()
                if isinstance(last_seen, str):
                    with contextlib.suppress(ValueError):
                        since = datetime.fromisoformat(last_seen).timestamp()
                self._silent_since.setdefault(event.device_id, since)
            else:
                self._silent_since.pop(event.device_id, None)

    def samples(self) -> list[Sample]:
        now = self._clock()
        with self._lock:
            return [
                Sample("device_silence_seconds", now - since, {"device": device})
                for device, since in self._silent_since.items()
            ]


def disk_samples(paths: Iterable[str]) -> list[Sample]:
    found = []
    for path in paths:
        usage = shutil.disk_usage(path)
        found.append(Sample("disk_used_ratio", usage.used / usage.total, {"path": path}))
    return found


def consumer_lag_samples() -> list[Sample]:
    return [
        Sample("consumer_lag", sample.value, dict(sample.labels))
        for metric in CONSUMER_LAG.collect()
        for sample in metric.samples
    ]


class NotificationFailures:
    """Failed notifications per endpoint since the previous call."""

    def __init__(self) -> None:
        self._previous: dict[str, float] = {}

    def samples(self) -> list[Sample]:
        totals: dict[str, float] = {}
        for metric in NOTIFICATIONS.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("outcome") == "failure":
                    totals[sample.labels["endpoint"]] = sample.value
        found = [
            Sample(
                "notification_failures",
                total - self._previous.get(endpoint, 0.0),
                {"endpoint": endpoint},
            )
            for endpoint, total in totals.items()
        ]
        self._previous = totals
        return found


class Indicators:
    """Every indicator source of a process, gathered in one call."""

    def __init__(self, *, disk_paths: Sequence[str], clock: Clock = time.time) -> None:
        self.disk_paths = tuple(disk_paths)
        self.dead_letters = DeadLetterRate(clock=clock)
        self.devices = DeviceSilence(clock=clock)
        self.notifications = NotificationFailures()
        self.extra: list[Callable[[], list[Sample]]] = []

    def collect(self) -> list[Sample]:
        samples = disk_samples(self.disk_paths) + consumer_lag_samples()
        samples += self.notifications.samples() + self.dead_letters.samples()
        samples += self.devices.samples()
        for source in self.extra:
            samples += source()
        return samples

    def consumer(self, *, group: str = "support-monitoring") -> ConsumerSpec:
        """Feeds dead-letter and device events into the trackers."""

        def track(batch: Sequence[Message]) -> None:
            for message in batch:
                envelope = message.envelope
                if message.delivery.topic == DEVICES.name:
                    device = cast(Envelope[DeviceEventV1], envelope)
                    self.devices.observe(device.payload, device.time)
                else:
                    letter = cast(Envelope[DeadLetterV1], envelope)
                    self.dead_letters.record(message.delivery.topic, letter.time.timestamp())

        return ConsumerSpec(
            name="support-monitoring",
            group=group,
            topics=[DEVICES, ACQUISITION_DEADLETTER, PLATFORM_DEADLETTER],
            handler=track,
        )
