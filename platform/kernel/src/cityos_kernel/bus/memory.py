"""The in-process bus: the all-in-one default and the fast adapter for unit tests.

It keeps Kafka's semantics that the platform relies on: records are partitioned by a hash
of their key (per-key order), each consumer group has committed offsets per partition, the
members of a group split the partitions, and a rebalance (a member joining or leaving)
moves every member back to the committed offsets, so whatever was polled but not committed
is delivered again. It keeps everything in memory: a restart of the process loses it.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from cityos_kernel.bus.port import CommitFailedError, Delivery, Record

TopicPartition = tuple[str, int]


def partition_for(key: str, partitions: int) -> int:
    """Stable partition of a key (CRC-32; stable across processes and runs)."""
    return zlib.crc32(key.encode()) % partitions


@dataclass
class _Group:
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    members: list[MemorySubscription] = field(default_factory=list)
    generation: int = 0


class MemoryBus:
    """Thread-safe in-memory bus with consumer groups and explicit commits."""

    def __init__(self, partitions: int = 6) -> None:
        self._partitions = partitions
        self._logs: dict[str, list[list[Delivery]]] = {}
        self._groups: dict[str, _Group] = {}
        self._lock = threading.Condition()
        self._closed = False

    @property
    def kind(self) -> str:
        return "memory"

    # -- publishing -----------------------------------------------------------------
    def publish(self, records: Sequence[Record]) -> None:
        now_ms = int(time.time() * 1000)
        with self._lock:
            for record in records:
                log = self._ensure_topic(record.topic)
                partition = partition_for(record.key, len(log))
                log[partition].append(
                    Delivery(
                        topic=record.topic,
                        partition=partition,
                        offset=len(log[partition]),
                        key=record.key,
                        value=record.value,
                        timestamp_ms=now_ms,
                    )
                )
            self._lock.notify_all()

    def ensure_topics(self, topics: Sequence[str]) -> None:
        with self._lock:
            for topic in topics:
                self._ensure_topic(topic)

    def _ensure_topic(self, topic: str) -> list[list[Delivery]]:
        log = self._logs.get(topic)
        if log is None:
            log = self._logs[topic] = [[] for _ in range(self._partitions)]
        return log

    # -- consuming ------------------------------------------------------------------
    def subscribe(self, group: str, topics: Sequence[str]) -> MemorySubscription:
        with self._lock:
            for topic in topics:
                self._ensure_topic(topic)
            state = self._groups.setdefault(group, _Group())
            subscription = MemorySubscription(self, group, tuple(topics))
            state.members.append(subscription)
            self._rebalance(state)
            return subscription

    def _leave(self, subscription: MemorySubscription) -> None:
        with self._lock:
            state = self._groups[subscription.group]
            if subscription in state.members:
                state.members.remove(subscription)
                self._rebalance(state)

    def _rebalance(self, state: _Group) -> None:
        """Assign partitions round-robin per topic; everyone restarts from committed."""
        state.generation += 1
        for member in state.members:
            member._assigned = {}
        topics = sorted({topic for member in state.members for topic in member.topics})
        for topic in topics:
            members = [member for member in state.members if topic in member.topics]
            for partition in range(len(self._logs[topic])):
                owner = members[partition % len(members)]
                owner._assigned[(topic, partition)] = state.committed.get((topic, partition), 0)
        for member in state.members:
            member._generation = state.generation
        self._lock.notify_all()

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """The group's committed offsets (next offset to read) per partition."""
        with self._lock:
            state = self._groups.get(group)
            return dict(state.committed) if state else {}

    def check(self) -> str:
        return f"in-process bus, {len(self._logs)} topics"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()


class MemorySubscription:
    """One member of a consumer group on a :class:`MemoryBus`."""

    def __init__(self, bus: MemoryBus, group: str, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self._group = group
        self.topics = topics
        #: partition -> position (next offset to hand out)
        self._assigned: dict[TopicPartition, int] = {}
        self._generation = 0
        self._closed = False

    @property
    def group(self) -> str:
        return self._group

    def assignment(self) -> set[TopicPartition]:
        with self._bus._lock:
            return set(self._assigned)

    def lag(self) -> dict[str, int]:
        with self._bus._lock:
            behind: dict[str, int] = {}
            for (topic, partition), position in self._assigned.items():
                end = len(self._bus._logs[topic][partition])
                behind[topic] = behind.get(topic, 0) + max(0, end - position)
            return behind

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        lock = self._bus._lock
        with lock:
            while True:
                batch = self._take(max_records)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0 or self._closed or self._bus._closed:
                    return batch
                lock.wait(remaining)

    def _take(self, max_records: int) -> list[Delivery]:
        batch: list[Delivery] = []
        for (topic, partition), position in sorted(self._assigned.items()):
            log = self._bus._logs[topic][partition]
            if position >= len(log):
                continue
            chunk = log[position : position + max_records - len(batch)]
            batch.extend(chunk)
            self._assigned[(topic, partition)] = position + len(chunk)
            if len(batch) >= max_records:
                break
        return batch

    def commit(self, deliveries: Sequence[Delivery] | None = None) -> None:
        with self._bus._lock:
            state = self._bus._groups[self._group]
            if self._closed or self._generation != state.generation:
                raise CommitFailedError(
                    f"group {self._group} rebalanced since these records were polled"
                )
            if deliveries is None:
                offsets = dict(self._assigned)
            else:
                offsets = {}
                for delivery in deliveries:
                    tp = (delivery.topic, delivery.partition)
                    offsets[tp] = max(offsets.get(tp, 0), delivery.offset + 1)
            for tp, offset in offsets.items():
                if tp not in self._assigned:
                    raise CommitFailedError(f"{tp} is not assigned to this member")
                state.committed[tp] = max(state.committed.get(tp, 0), offset)

    def rewind(self) -> None:
        with self._bus._lock:
            state = self._bus._groups[self._group]
            for tp in self._assigned:
                self._assigned[tp] = state.committed.get(tp, 0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._leave(self)
