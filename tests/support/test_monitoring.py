"""Warning rules over indicators, delivered to a real SMTP server (aiosmtpd) and a real
HTTP receiver on loopback: one message when a warning starts, none while it lasts, one on
recovery; undeliverable messages are retried."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from cityos_kernel.bus import MemoryBus, Record
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.events.payloads import DeadLetterV1, DeviceEventV1
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, DEVICES
from cityos_support.monitoring.indicators import Indicators
from cityos_support.monitoring.metrics import NOTIFICATIONS
from cityos_support.monitoring.notifiers import Dispatcher, SmtpConfig
from cityos_support.monitoring.rules import Sample, WarningEvaluator, WarningRule, WarningRules
from cityos_support.monitoring.service import MonitoringService


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/cityos"


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(
        target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_the_evaluator_notifies_on_transitions_only() -> None:
    rule = WarningRule(name="lag", indicator="consumer_lag", above=100, repeat_after_seconds=60)
    evaluator = WarningEvaluator()
    high = [Sample("consumer_lag", 500, {"group": "knowledge"})]
    assert [m.state for m in evaluator.evaluate([rule], high, now=0)] == ["firing"]
    assert evaluator.evaluate([rule], high, now=10) == []
    assert [m.state for m in evaluator.evaluate([rule], high, now=61)] == ["repeat"]
    low = [Sample("consumer_lag", 5, {"group": "knowledge"})]
    resolved = evaluator.evaluate([rule], low, now=70)
    assert [(m.state, m.value) for m in resolved] == [("resolved", 5)]
    assert evaluator.evaluate([rule], low, now=80) == []


def test_each_label_set_is_a_separate_warning() -> None:
    rule = WarningRule(name="disk", indicator="disk_used_ratio", above=0.9)
    evaluator = WarningEvaluator()
    samples = [
        Sample("disk_used_ratio", 0.95, {"path": "/"}),
        Sample("disk_used_ratio", 0.5, {"path": "/data"}),
    ]
    messages = evaluator.evaluate([rule], samples, now=0)
    assert [dict(m.labels) for m in messages] == [{"path": "/"}]


def publish_dead_letters(bus: MemoryBus, count: int) -> None:
    letter = DeadLetterV1(reason="bad payload", source="mqtt", payload="{", original_size=1)
    envelope = ACQUISITION_DEADLETTER.envelope(letter, source="acquisition")
    bus.publish(
        [Record(ACQUISITION_DEADLETTER.name, "dev-1", ACQUISITION_DEADLETTER.encode(envelope))]
        * count
    )


def run_consumer_until(bus: MemoryBus, indicators: Indicators, group: str, count: int) -> None:
    runner = ConsumerRunner(bus, indicators.consumer(group=group))
    runner.start()
    deadline = time.monotonic() + 5
    while sum(bus.committed(group).values()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    runner.stop()


def test_dead_letter_burst_mails_and_posts_once_then_recovers(
    smtp_server: tuple[Mailbox, int], webhook: Receiver
) -> None:
    mailbox, port = smtp_server
    clock = Clock()
    indicators = Indicators(disk_paths=(), clock=clock)
    rules = WarningRules(
        rules=[
            WarningRule(
                name="dead-letters",
                indicator="deadletter_rate",
                above=2,
                notify=["mailto:ops@city.example.org", webhook.url],
            )
        ]
    )
    service = MonitoringService(
        indicators,
        lambda: rules,
        Dispatcher(SmtpConfig(host="127.0.0.1", port=port, sender="cityos@city.example.org")),
        interval=60,
        clock=clock,
    )
    bus = MemoryBus()
    publish_dead_letters(bus, 20)
    run_consumer_until(bus, indicators, "monitoring-test", 20)

    assert [m.state for m in service.run_once()] == ["firing"]
    assert service.run_once() == []  # still firing: no duplicate
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["To"] == "ops@city.example.org"
    assert "WARNING" in mail["Subject"] and "dead-letters" in mail["Subject"]
    assert "topic=acquisition.deadletter.v1" in mail["Subject"]
    assert [body["state"] for body in webhook.bodies] == ["firing"]
    assert webhook.bodies[0]["labels"] == {"topic": "acquisition.deadletter.v1"}

    clock.now += 600  # the burst leaves the five-minute window
    assert [m.state for m in service.run_once()] == ["resolved"]
    assert len(mailbox.messages) == 2
    assert "RECOVERED" in mailbox.messages[1]["Subject"]
    assert [body["state"] for body in webhook.bodies] == ["firing", "resolved"]


def test_undeliverable_messages_are_retried(webhook: Receiver) -> None:
    port = free_port()  # nothing listens here yet
    mailbox = Mailbox()
    dispatcher = Dispatcher(SmtpConfig(host="127.0.0.1", port=port, timeout=2))
    rule = WarningRule(
        name="silent",
        indicator="device_silence_seconds",
        above=60,
        notify=["mailto:ops@city.example.org", webhook.url],
    )
    webhook.status = 503
    messages = WarningEvaluator().evaluate(
        [rule], [Sample("device_silence_seconds", 900, {"device": "d1"})], now=0
    )
    assert dispatcher.dispatch(messages) == 0
    assert dispatcher.pending == 2
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    webhook.status = 200
    try:
        assert dispatcher.dispatch([]) == 2
    finally:
        controller.stop()
    assert dispatcher.pending == 0
    assert len(mailbox.messages) == 1
    assert [body["state"] for body in webhook.bodies] == ["firing", "firing"]  # 503, then 200


def test_device_silence_and_failing_endpoints_are_indicators() -> None:
    clock = Clock()
    indicators = Indicators(disk_paths=("/",), clock=clock)
    bus = MemoryBus()
    silent_since = datetime.fromtimestamp(clock.now - 7200, UTC).isoformat()
    for device, event, details in (
        ("meter-1", "no_data", {"last_seen": silent_since}),
        ("meter-2", "no_data", {}),
        ("meter-2", "health", {"status": "ok"}),
    ):
        payload = DeviceEventV1(device_id=device, event=event, details=details)  # type: ignore[arg-type]
        envelope = DEVICES.envelope(payload, source="acquisition")
        bus.publish([Record(DEVICES.name, device, DEVICES.encode(envelope))])
    run_consumer_until(bus, indicators, "devices-test", 3)
    NOTIFICATIONS.labels("http://broken.example/notify", "failure").inc(7)

    samples = indicators.collect()
    silence = {
        s.labels["device"]: s.value for s in samples if s.indicator == "device_silence_seconds"
    }
    assert set(silence) == {"meter-1"}
    assert silence["meter-1"] == pytest.approx(7200, abs=5)
    failures = {
        s.labels["endpoint"]: s.value for s in samples if s.indicator == "notification_failures"
    }
    assert failures["http://broken.example/notify"] == 7
    disk = [s for s in samples if s.indicator == "disk_used_ratio"]
    assert disk and 0 < disk[0].value < 1
    # Failures are counted per round: nothing new, nothing reported.
    again = [s for s in indicators.collect() if s.indicator == "notification_failures"]
    assert all(s.value == 0 for s in again)
