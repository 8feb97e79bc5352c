"""The bus port: what every layer may ask of a message bus, whatever the adapter.

Semantics (both adapters honour them, the contract tests in ``tests/kernel/bus`` check it):

- ``publish`` returns only when every record is confirmed by the bus, or raises
  :class:`PublishError`; records with the same key keep their order (same partition).
- ``subscribe`` joins a consumer group; the group's members split the partitions.
- ``poll`` hands out records after the member's position; ``commit`` stores offsets for
  the group. Nothing is committed implicitly: records polled but not committed are
  delivered again to whoever owns the partition after a rebalance, a restart or
  :meth:`Subscription.rewind` (at-least-once delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cityos_kernel.errors import CityosError


@dataclass(frozen=True, slots=True)
class Record:
    """A message to publish: topic, partitioning key and encoded value."""

    topic: str
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message received from the bus, with where it sits in its partition."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int


class BusError(CityosError):
    """The bus could not do what was asked."""


class PublishError(BusError):
    """Some records were not confirmed; the caller must not acknowledge its input."""


class CommitFailedError(BusError):
    """Offsets could not be committed (e.g. the partition moved to another member).

    The records will be delivered again to the partition's new owner.
    """


class Subscription(Protocol):
    """A member of a consumer group."""

    @property
    def group(self) -> str: ...

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Delivery]:
        """Return up to ``max_records`` records, waiting at most ``timeout`` seconds."""
        ...

    def commit(self, deliveries: Sequence[Delivery] | None = None) -> None:
        """Commit past the given deliveries (default: everything polled so far)."""
        ...

    def rewind(self) -> None:
        """Move back to the committed offsets so uncommitted records come again."""
        ...

    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this member currently owns."""
        ...

    def lag(self) -> dict[str, int]:
        """Records published but not yet handed to this member, per topic it owns.

        Answered from what the member already knows (no round trip to the broker), so it
        is cheap enough to read after every poll; a partition with no known end is left out.
        """
        ...

    def close(self) -> None:
        """Leave the group without committing anything further."""
        ...


class Bus(Protocol):
    """Publish records and subscribe as consumer groups."""

    @property
    def kind(self) -> str: ...

    def publish(self, records: Sequence[Record]) -> None:
        """Publish a batch and block until every record is confirmed."""
        ...

    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription:
        """Join ``group`` for ``topics`` (created with the configured partitions if absent)."""
        ...

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics if they do not exist."""
        ...

    def check(self) -> str:
        """Return a short description when the bus is reachable; raise BusError otherwise."""
        ...

    def close(self) -> None:
        """Flush pending work and release connections."""
        ...
