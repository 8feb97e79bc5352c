"""The consumer loop on the in-memory bus: dead letters, redelivery, commit after handling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from cityos_kernel.bus import MemoryBus, Record
from cityos_kernel.bus.consumer import ConsumerRunner, ConsumerSpec, Message, dead_letter_payload
from cityos_kernel.bus.port import Delivery
from cityos_kernel.events.envelope import Envelope
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import OBSERVATIONS, PLATFORM_DEADLETTER, Topic


def observation_record(entity: str, value: float) -> Record:
    payload = ObservationV1(
        entity_id=entity,
        entity_type="WeatherObserved",
        attributes=[
            ObservedAttribute(name="temperature", value=value, observed_at=datetime.now(UTC))
        ],
    )
    envelope = OBSERVATIONS.envelope(payload, source="test")
    return Record(OBSERVATIONS.name, entity, OBSERVATIONS.encode(envelope))


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def run(
    bus: MemoryBus, handler: Callable[[Sequence[Message]], None], **spec: object
) -> ConsumerRunner:
    runner = ConsumerRunner(
        bus,
        ConsumerSpec(
            name="test",
            group="g",
            topics=[OBSERVATIONS],
            handler=handler,
            **spec,  # type: ignore[arg-type]
        ),
    )
    runner.start()
    return runner


def test_valid_messages_reach_the_handler_and_are_committed() -> None:
    bus = MemoryBus(partitions=3)
    bus.publish([observation_record(f"urn:e:{i}", i) for i in range(20)])
    seen: list[float] = []
    runner = run(
        bus, lambda batch: seen.extend(m.envelope.payload.attributes[0].value for m in batch)
    )  # type: ignore[attr-defined]
    wait_until(lambda: len(seen) == 20)
    runner.stop()
    assert sorted(seen) == list(range(20))
    assert sum(bus.committed("g").values()) == 20


def test_invalid_message_goes_to_dead_letter_with_reason_and_others_proceed() -> None:
    bus = MemoryBus(partitions=1)
    bus.publish(
        [
            observation_record("urn:e:1", 1),
            Record(OBSERVATIONS.name, "urn:e:bad", b'{"not": "an envelope"}'),
            observation_record("urn:e:2", 2),
        ]
    )
    seen: list[str] = []
    runner = run(bus, lambda batch: seen.extend(m.envelope.payload.entity_id for m in batch))  # type: ignore[attr-defined]
    wait_until(lambda: len(seen) == 2)
    runner.stop()
    assert seen == ["urn:e:1", "urn:e:2"]
    dead = bus.subscribe("ops", [PLATFORM_DEADLETTER.name]).poll(10, 1.0)
    assert len(dead) == 1
    letter = PLATFORM_DEADLETTER.decode(dead[0].value).payload
    assert letter.topic == OBSERVATIONS.name and letter.consumer_group == "g"
    assert letter.offset == 1
    assert "does not match" in letter.reason
    assert letter.payload == '{"not": "an envelope"}'
    assert bus.committed("g") == {(OBSERVATIONS.name, 0): 3}


def test_a_failing_handler_gets_the_same_batch_again_and_nothing_is_committed_before() -> None:
    bus = MemoryBus(partitions=1)
    bus.publish([observation_record("urn:e:1", 1), observation_record("urn:e:2", 2)])
    attempts: list[list[str]] = []
    committed_during_failures: list[int] = []

    def flaky(batch: Sequence[Message]) -> None:
        attempts.append([m.envelope.payload.entity_id for m in batch])  # type: ignore[attr-defined]
        if len(attempts) < 3:
            committed_during_failures.append(sum(bus.committed("g").values()))
            raise RuntimeError("database unavailable")

    runner = run(bus, flaky, retry_backoff=(0.01, 0.05))
    wait_until(lambda: len(attempts) >= 3 and sum(bus.committed("g").values()) == 2)
    runner.stop()
    assert attempts[:3] == [["urn:e:1", "urn:e:2"]] * 3
    assert committed_during_failures == [0, 0]
    assert runner.failures == 2


def test_stop_leaves_the_uncommitted_for_the_next_member() -> None:
    bus = MemoryBus(partitions=1)
    release = threading.Event()

    def slow(batch: Sequence[Message]) -> None:
        release.wait(5)
        raise RuntimeError("killed before commit")

    bus.publish([observation_record("urn:e:1", 1)])
    runner = run(bus, slow, retry_backoff=(10.0, 10.0))
    time.sleep(0.2)
    release.set()
    runner.stop()
    again = bus.subscribe("g", [OBSERVATIONS.name]).poll(10, 1.0)
    assert [d.key for d in again] == ["urn:e:1"]


def test_dead_letter_payload_caps_size_and_keeps_binary_as_base64() -> None:
    letter = dead_letter_payload(b"\x00\xff" * 10, reason="bad", source="mqtt", limit=4)
    assert letter.payload_encoding == "base64"
    assert letter.truncated and letter.original_size == 20
    assert letter.payload == "AP8A/w=="
    text = dead_letter_payload(b"hello", reason="bad", source="mqtt")
    assert (text.payload, text.payload_encoding, text.truncated) == ("hello", "utf-8", False)


@pytest.mark.parametrize("partitions", [1, 4])
def test_order_per_key_is_kept_through_the_runner(partitions: int) -> None:
    bus = MemoryBus(partitions=partitions)
    bus.publish([observation_record(f"urn:e:{i % 3}", i) for i in range(30)])
    seen: dict[str, list[float]] = {}

    def collect(batch: Sequence[Message]) -> None:
        for m in batch:
            p = m.envelope.payload
            seen.setdefault(p.entity_id, []).append(p.attributes[0].value)  # type: ignore[attr-defined]

    runner = run(bus, collect)
    wait_until(lambda: sum(len(v) for v in seen.values()) == 30)
    runner.stop()
    for values in seen.values():
        assert values == sorted(values)


def test_the_runner_publishes_its_lag_for_monitoring() -> None:
    from prometheus_client import REGISTRY

    bus = MemoryBus(partitions=2)
    release = threading.Event()
    bus.publish([observation_record(f"urn:e:{i}", i) for i in range(10)])
    runner = run(bus, lambda batch: release.wait(5), max_batch=1, poll_timeout=0.05)

    def lag() -> float | None:
        return REGISTRY.get_sample_value(
            "cityos_bus_consumer_lag", {"group": "g", "topic": OBSERVATIONS.name}
        )

    release.set()
    wait_until(lambda: sum(bus.committed("g").values()) == 10)
    wait_until(lambda: lag() == 0)
    runner.stop()
    assert lag() == 0


def test_a_shared_decode_lock_is_held_while_decoding_and_free_for_handler_and_dead_letter() -> None:
    """Members sharing a decode lock take turns decoding but never wait on each other's
    handler (its I/O) or dead letters."""
    bus = MemoryBus(partitions=1)
    lock = threading.Lock()
    held_while_decoding: list[bool] = []

    @dataclass(frozen=True)
    class RecordingTopic(Topic[ObservationV1]):
        def decode(self, data: bytes) -> Envelope[ObservationV1]:
            held_while_decoding.append(lock.locked())
            return super().decode(data)

    topic = RecordingTopic(OBSERVATIONS.name, ObservationV1, "entity id", (), ())
    held_while_handling: list[bool] = []
    held_while_dead_lettering: list[bool] = []

    def dead_letter(delivery: Delivery, reason: str, *, group: str) -> None:
        held_while_dead_lettering.append(lock.locked())

    spec = ConsumerSpec(
        name="test",
        group="g",
        topics=[topic],
        handler=lambda batch: held_while_handling.append(lock.locked()),
        dead_letter=dead_letter,
        decode_lock=lock,
    )
    bus.publish(
        [
            observation_record("urn:e:1", 1),
            Record(OBSERVATIONS.name, "urn:e:bad", b"{}"),
            observation_record("urn:e:2", 2),
        ]
    )
    subscription = bus.subscribe("g", [OBSERVATIONS.name])
    ConsumerRunner(bus, spec).process(subscription, subscription.poll(10, 1.0))
    assert held_while_decoding == [True, True, True]
    assert held_while_handling == [False]
    assert held_while_dead_lettering == [False]
    assert sum(bus.committed("g").values()) == 3
