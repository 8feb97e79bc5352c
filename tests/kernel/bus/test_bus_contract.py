"""The bus contract: the same tests run on the in-memory bus and on the Kafka adapter (Tansu).

Every property here is one a layer relies on (see ``cityos_kernel.bus.port``): confirmed
publishing, per-key order, partitioning by key, commits that a new member resumes from,
redelivery of what was not committed, consumer groups splitting partitions.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import pytest

from cityos_kernel.bus import (
    Bus,
    BusError,
    CommitFailedError,
    Delivery,
    KafkaBus,
    KafkaPublishError,
    Record,
    Subscription,
)

#: Generous: a Kafka group join takes about a second on Tansu with the test tuning.
DEADLINE = 30.0

Position = tuple[int, int]  # (partition, offset)

#: Partitions per topic of the ``bus`` fixture's adapters (see conftest.py).
PARTITIONS = 6


def numbered_records(topic: str, keys: Sequence[str], per_key: int) -> list[Record]:
    """``per_key`` records for each key, interleaved across keys, valued ``key:seq``."""
    return [Record(topic, key, f"{key}:{seq}".encode()) for seq in range(per_key) for key in keys]


def keys(count: int) -> list[str]:
    return [f"urn:ngsi-ld:Sensor:{index:03d}" for index in range(count)]


def consume(subscription: Subscription, count: int, timeout: float = DEADLINE) -> list[Delivery]:
    """Poll until ``count`` deliveries arrived; fail with what came if it takes too long."""
    received: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(received) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"received {len(received)} of {count} records in {timeout} s")
        received.extend(subscription.poll(max_records=100, timeout=0.2))
    return received


def assert_quiet(subscription: Subscription, seconds: float = 0.6) -> None:
    """Nothing more arrives for a while (no duplicate, no stray record)."""
    deadline = time.monotonic() + seconds
    extra: list[Delivery] = []
    while time.monotonic() < deadline:
        extra.extend(subscription.poll(timeout=0.1))
    assert extra == [], f"unexpected extra deliveries: {positions(extra)}"


def positions(deliveries: Iterable[Delivery]) -> list[Position]:
    return sorted((delivery.partition, delivery.offset) for delivery in deliveries)


def values(deliveries: Iterable[Delivery]) -> Counter[bytes]:
    return Counter(delivery.value for delivery in deliveries)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Member(threading.Thread):
    """Polls one subscription on its own thread (a subscription belongs to one thread)."""

    def __init__(self, subscription: Subscription, *, commit: bool) -> None:
        super().__init__(daemon=True)
        self.subscription = subscription
        self.commit = commit
        self.deliveries: list[Delivery] = []
        self.assigned: frozenset[tuple[str, int]] = frozenset()
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                batch = self.subscription.poll(max_records=50, timeout=0.1)
                if batch and self.commit:
                    self.subscription.commit(batch)
                assigned = frozenset(self.subscription.assignment())
                with self._lock:
                    self.deliveries.extend(batch)
                    self.assigned = assigned
        except BaseException as exc:
            self.error = exc

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=DEADLINE)
        assert not self.is_alive(), "member thread did not stop"
        if self.error is not None:
            raise self.error


def split_between(first: Member, second: Member, topic: str) -> Callable[[], bool]:
    """True once the two members own disjoint, non-empty partition sets covering the topic."""
    every = {(topic, partition) for partition in range(PARTITIONS)}

    def settled() -> bool:
        a, b = first.assigned, second.assigned
        return bool(a) and bool(b) and not (a & b) and a | b == every

    return settled


# -- publishing ------------------------------------------------------------------------


def test_published_records_come_back_with_their_key_value_and_position(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    before_ms = int(time.time() * 1000)
    records = [
        Record(topic, "urn:ngsi-ld:Sensor:é-1", b'{"t": 21.5}'),
        Record(topic, "urn:ngsi-ld:Sensor:2", b"\x00\xffbinary"),
        Record(topic, "urn:ngsi-ld:Sensor:3", b""),
    ]
    bus.publish(records)  # returns only once confirmed: a consumer must find them all

    received = consume(bus.subscribe(new_group(), [topic]), len(records))

    assert sorted((d.key, d.value) for d in received) == sorted((r.key, r.value) for r in records)
    for delivery in received:
        assert delivery.topic == topic
        assert 0 <= delivery.partition < PARTITIONS
        assert delivery.offset >= 0
        assert before_ms - 60_000 <= delivery.timestamp_ms <= int(time.time() * 1000) + 60_000


def test_records_of_one_key_keep_their_order_across_many_keys(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    sensor_keys, per_key = keys(40), 25
    records = numbered_records(topic, sensor_keys, per_key)
    for start in range(0, len(records), 300):  # several publish calls, as a producer would
        bus.publish(records[start : start + 300])

    received = consume(bus.subscribe(new_group(), [topic]), len(records))

    sequences: dict[str, list[int]] = {}
    for delivery in received:
        assert delivery.key is not None
        key, seq = delivery.value.decode().rsplit(":", 1)
        assert key == delivery.key
        sequences.setdefault(key, []).append(int(seq))
    assert sequences == {key: list(range(per_key)) for key in sensor_keys}


def test_a_key_always_lands_in_the_same_partition(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    sensor_keys = keys(60)
    bus.publish(numbered_records(topic, sensor_keys, 2))
    bus.publish(numbered_records(topic, sensor_keys[::-1], 1))  # a later call, other order

    received = consume(bus.subscribe(new_group(), [topic]), 3 * len(sensor_keys))

    partitions_of: dict[str | None, set[int]] = {}
    for delivery in received:
        partitions_of.setdefault(delivery.key, set()).add(delivery.partition)
    assert all(len(found) == 1 for found in partitions_of.values()), partitions_of
    used = {partition for found in partitions_of.values() for partition in found}
    assert len(used) > PARTITIONS // 2, f"60 keys should spread over partitions, got {used}"
    for partition in used:  # each partition is a gap-free log from offset 0
        offsets = sorted(d.offset for d in received if d.partition == partition)
        assert offsets == list(range(len(offsets)))


# -- commits and redelivery ---------------------------------------------------------------


def test_a_new_member_resumes_exactly_after_the_committed_offsets(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    records = numbered_records(topic, keys(30), 6)
    bus.publish(records)
    group = new_group()
    first = bus.subscribe(group, [topic])
    received = consume(first, len(records))
    # commit the first half of each partition only
    handled = [
        d for d in received if d.offset < sum(o.partition == d.partition for o in received) // 2
    ]
    assert 0 < len(handled) < len(records)
    first.commit(handled)
    first.close()

    second = bus.subscribe(group, [topic])
    rest = consume(second, len(records) - len(handled))
    assert_quiet(second)

    assert set(positions(handled)).isdisjoint(positions(rest)), "committed records came again"
    assert sorted(positions(handled) + positions(rest)) == positions(received)
    assert values(handled) + values(rest) == Counter(record.value for record in records)


def test_uncommitted_records_go_to_the_next_member_after_a_close(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    records = numbered_records(topic, keys(20), 5)
    bus.publish(records)
    group = new_group()
    first = bus.subscribe(group, [topic])
    polled = consume(first, len(records))
    first.close()  # crashed handler: nothing committed

    second = bus.subscribe(group, [topic])
    again = consume(second, len(records))
    assert_quiet(second)

    assert positions(again) == positions(polled)
    assert values(again) == Counter(record.value for record in records)


def test_rewind_brings_back_exactly_what_was_not_committed(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    records = numbered_records(topic, keys(24), 5)
    bus.publish(records)
    subscription = bus.subscribe(new_group(), [topic])
    polled = consume(subscription, len(records))
    handled = polled[: len(polled) // 3]
    subscription.commit(handled)
    committed_to: dict[int, int] = {}
    for delivery in handled:
        committed_to[delivery.partition] = max(
            committed_to.get(delivery.partition, 0), delivery.offset + 1
        )
    expected = [d for d in polled if d.offset >= committed_to.get(d.partition, 0)]

    subscription.rewind()
    again = consume(subscription, len(expected))
    assert_quiet(subscription)
    assert positions(again) == positions(expected)

    subscription.commit()  # everything polled so far
    subscription.rewind()
    assert_quiet(subscription)


# -- consumer groups --------------------------------------------------------------------


def test_members_of_a_group_split_the_partitions_and_each_record_goes_to_one(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    group = new_group()
    first = Member(bus.subscribe(group, [topic]), commit=True)
    second = Member(bus.subscribe(group, [topic]), commit=True)
    first.start()
    second.start()
    try:
        wait_until(split_between(first, second, topic), "both members to own partitions")
        records = numbered_records(topic, keys(60), 5)
        bus.publish(records)
        wait_until(
            lambda: len(first.received()) + len(second.received()) >= len(records),
            "the group to consume every record",
        )
        time.sleep(0.5)  # room for a duplicate to show up
    finally:
        first.halt()
        second.halt()

    assert first.assigned.isdisjoint(second.assigned)
    for member in (first, second):
        assert {(d.topic, d.partition) for d in member.received()} <= member.assigned
    both = first.received() + second.received()
    assert Counter(positions(both)).most_common(1)[0][1] == 1, "a record went to both members"
    assert values(both) == Counter(record.value for record in records)


def test_every_group_sees_every_record(bus: Bus, topic: str, new_group: Callable[[], str]) -> None:
    records = numbered_records(topic, keys(20), 5)
    bus.publish(records)
    expected = Counter(record.value for record in records)

    for group in (new_group(), new_group()):
        subscription = bus.subscribe(group, [topic])
        received = consume(subscription, len(records))
        assert_quiet(subscription, seconds=0.3)
        assert values(received) == expected
        subscription.commit(received)


def test_committing_a_partition_that_moved_to_another_member_fails(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    records = numbered_records(topic, keys(60), 3)
    bus.publish(records)
    group = new_group()
    first_subscription = bus.subscribe(group, [topic])
    polled = consume(first_subscription, len(records))  # from every partition

    first = Member(first_subscription, commit=False)
    second = Member(bus.subscribe(group, [topic]), commit=False)
    first.start()
    second.start()
    try:
        wait_until(split_between(first, second, topic), "the group to rebalance")
    finally:
        first.halt()
        second.halt()
    lost = [d for d in polled if (d.topic, d.partition) in second.assigned]
    kept = [d for d in polled if (d.topic, d.partition) in first.assigned]
    assert lost
    assert kept

    with pytest.raises(CommitFailedError):
        first.subscription.commit(lost)
    first.subscription.commit(kept)  # partitions still owned can be committed

    # the failed commit stored nothing: the new owner reads the moved partitions from 0
    second.subscription.rewind()
    owned = consume(second.subscription, len(lost))
    assert_quiet(second.subscription)
    assert positions(owned) == positions(lost)


# -- Kafka adapter specifics (no in-memory counterpart) -----------------------------------


@pytest.mark.kafka
def test_kafka_publish_reports_the_records_the_broker_refused(
    kafka_bootstrap: str, topic: str
) -> None:
    bus = KafkaBus(kafka_bootstrap, partitions=PARTITIONS)
    try:
        oversized = Record(topic, "too-big", b"x" * (bus.producer_tuning.max_request_size + 1))
        fine = Record(topic, "fine", b"ok")
        with pytest.raises(KafkaPublishError) as raised:
            bus.publish([fine, oversized, fine])
        failed = [record for record, _ in raised.value.failures]
        assert oversized in failed
        assert failed[-1] == fine, "records after a refused one must be reported, not dropped"
        assert bus.idempotent, "Tansu accepts the idempotent producer (docs/bus.md)"
    finally:
        bus.close()


def test_kafka_check_fails_fast_when_no_broker_answers() -> None:
    bus = KafkaBus("127.0.0.1:9")  # discard port: nothing listens there
    started = time.monotonic()
    with pytest.raises(BusError):
        bus.check()
    assert time.monotonic() - started < 5.0
    bus.close()


@pytest.mark.kafka
def test_kafka_check_describes_the_cluster(kafka_bootstrap: str) -> None:
    bus = KafkaBus(kafka_bootstrap)
    try:
        description = bus.check()
    finally:
        bus.close()
    assert "1 broker(s)" in description


def test_lag_counts_what_the_member_has_not_received(
    bus: Bus, topic: str, new_group: Callable[[], str]
) -> None:
    """Operators watch lag: published minus handed out, per topic, falling to zero."""
    bus.publish(numbered_records(topic, keys(1), per_key=40))  # one key: one partition
    subscription = bus.subscribe(new_group(), [topic])
    try:
        first = consume(subscription, 1)
        # The member may have been handed more than one record by now; lag is what is left.
        wait_until(lambda: topic in subscription.lag(), "a lag figure for the topic")
        assert subscription.lag()[topic] == 40 - len(first)
        rest = consume(subscription, 40 - len(first))
        assert len(first) + len(rest) == 40
        assert subscription.lag()[topic] == 0
        bus.publish(numbered_records(topic, keys(1), per_key=5))
        more = consume(subscription, 5)
        assert [d.value for d in more] == [f"{keys(1)[0]}:{seq}".encode() for seq in range(5)]
        wait_until(lambda: subscription.lag().get(topic) == 0, "lag back to zero")
    finally:
        subscription.close()
