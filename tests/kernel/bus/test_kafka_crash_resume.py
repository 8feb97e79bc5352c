"""A consumer killed by SIGKILL mid-stream: nothing lost, only the uncommitted comes again.

The consumer runs in a child process that commits part of what it polls, polls more, reports
its committed offsets and is then killed without any chance to clean up (no LeaveGroup, no
flush). A new member of the same group must get exactly the records after the committed
offsets: the uncommitted ones again, the committed ones never.

There is no in-memory variant: the in-memory bus lives inside the process, so killing the
process kills the bus and its offsets with it; there is nothing left to resume from.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from cityos_kernel.bus import ConsumerTuning, Delivery, KafkaBus, Record, Subscription

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOTAL = 1200
COMMIT_FIRST = 300
POLL_AT_LEAST = 700
#: Short group timings (Tansu only, see docs/bus.md): the dead member's session ends in 2 s.
TUNING = ConsumerTuning(
    session_timeout_ms=2000, heartbeat_interval_ms=500, max_poll_interval_ms=20_000
)

# Run with ``python -c``: joins the group, commits the first COMMIT_FIRST deliveries,
# polls at least POLL_AT_LEAST in all, prints one JSON line and waits to be killed.
CHILD = """
import json, sys, time
from cityos_kernel.bus import ConsumerTuning, KafkaBus

bootstrap, group, topic, commit_first, poll_at_least = sys.argv[1:6]
bus = KafkaBus(bootstrap, consumer_tuning=ConsumerTuning(
    session_timeout_ms=2000, heartbeat_interval_ms=500, max_poll_interval_ms=20000))
subscription = bus.subscribe(group, [topic])
polled, handled = [], []
deadline = time.monotonic() + 30
while len(polled) < int(poll_at_least) and time.monotonic() < deadline:
    polled.extend(subscription.poll(max_records=50, timeout=0.2))
    if not handled and len(polled) >= int(commit_first):
        handled = polled[: int(commit_first)]
        subscription.commit(handled)
committed = {}
for delivery in handled:
    committed[delivery.partition] = max(committed.get(delivery.partition, 0), delivery.offset + 1)
print(json.dumps({"polled": len(polled), "committed": committed}), flush=True)
time.sleep(600)
"""


def test_a_killed_consumer_is_resumed_from_its_committed_offsets(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"test.crash.{uuid.uuid4().hex}.v1"
    group = f"test-crash-{uuid.uuid4().hex}"
    bus = KafkaBus(kafka_bootstrap, client_id="test-crash", consumer_tuning=TUNING)
    try:
        bus.publish(
            [Record(topic, f"sensor-{n % 97}", f"reading-{n}".encode()) for n in range(TOTAL)]
        )
        log = read_whole_topic(bus, topic)  # (partition, offset) -> value

        report = run_child_until_killed(kafka_bootstrap, group, topic, tmp_path)
        committed = {int(partition): offset for partition, offset in report["committed"].items()}
        assert sum(committed.values()) == COMMIT_FIRST
        assert report["polled"] >= POLL_AT_LEAST, "the child must die holding uncommitted records"
        assert stored_offsets(kafka_bootstrap, group, topic) == committed

        survivor = bus.subscribe(group, [topic])
        resumed = consume(survivor, TOTAL - COMMIT_FIRST)
        assert_quiet(survivor)
    finally:
        bus.close()

    got = [(d.partition, d.offset) for d in resumed]
    assert Counter(got).most_common(1)[0][1] == 1, "a record was delivered twice"
    assert not [p for p in got if p[1] < committed.get(p[0], 0)], "committed records came again"
    expected = {
        position: value
        for position, value in log.items()
        if position[1] >= committed.get(position[0], 0)
    }
    assert {(d.partition, d.offset): d.value for d in resumed} == expected


def run_child_until_killed(bootstrap: str, group: str, topic: str, tmp_path: Path) -> Any:
    """Start the child consumer, wait for its report, then SIGKILL it."""
    stderr_path = tmp_path / "child.stderr"
    command = [sys.executable, "-c", CHILD, bootstrap, group, topic]
    command += [str(COMMIT_FIRST), str(POLL_AT_LEAST)]
    with stderr_path.open("wb") as stderr:
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # blocks until the report (or the child's death)
            assert line, f"the child consumer died early:\n{stderr_path.read_text()[-3000:]}"
            assert child.poll() is None, "the child must still be running when killed"
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return json.loads(line)


def stored_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets as the broker stores them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-crash-admin")
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == topic and meta.offset >= 0
    }


def read_whole_topic(bus: KafkaBus, topic: str) -> dict[tuple[int, int], bytes]:
    """Every record of the topic by position, read by a throwaway group."""
    reader = bus.subscribe(f"test-crash-reader-{uuid.uuid4().hex}", [topic])
    try:
        deliveries = consume(reader, TOTAL)
    finally:
        reader.close()
    log = {(d.partition, d.offset): d.value for d in deliveries}
    assert len(log) == TOTAL
    return log


def consume(subscription: Subscription, count: int, timeout: float = 30.0) -> list[Delivery]:
    received: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(received) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"received {len(received)} of {count} records in {timeout} s")
        received.extend(subscription.poll(max_records=200, timeout=0.2))
    return received


def assert_quiet(subscription: Subscription, seconds: float = 1.0) -> None:
    deadline = time.monotonic() + seconds
    extra: list[Delivery] = []
    while time.monotonic() < deadline:
        extra.extend(subscription.poll(timeout=0.1))
    assert extra == [], f"{len(extra)} records beyond the expected ones"
