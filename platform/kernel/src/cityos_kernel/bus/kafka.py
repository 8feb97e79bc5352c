"""The Kafka adapter of the bus port, on kafka-python.

One :class:`KafkaBus` owns one idempotent producer (``acks=all``, thread-safe, shared by
every publisher of the process) and a lazily created admin client; each
:meth:`KafkaBus.subscribe` makes one :class:`KafkaSubscription` around its own
``KafkaConsumer``; a subscription must be used by one thread only.

Offsets are never committed implicitly (``enable_auto_commit=False``): the consumer loop
commits the exact offsets of the deliveries it has handled. Consumer groups use the eager
assignors, so a rebalance revokes every partition and each member restarts from the
committed offsets, as on the in-memory bus. Broker-specific behaviour (Tansu in tests,
Apache Kafka in production) is described in ``docs/bus.md``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    OffsetAndMetadata,
    TopicPartition,
)
from kafka.errors import KafkaConfigurationError, KafkaError, UnsupportedVersionError
from kafka.errors import TopicAlreadyExistsError as _TopicAlreadyExists

from cityos_kernel.bus.port import BusError, CommitFailedError, Delivery, PublishError, Record

__all__ = [
    "ConsumerTuning",
    "KafkaBus",
    "KafkaPublishError",
    "KafkaSubscription",
    "ProducerTuning",
]

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = _TopicAlreadyExists.errno
_CHECK_TIMEOUT_MS = 2500


@dataclass(frozen=True, slots=True)
class ConsumerTuning:
    """Group and fetch timings of every consumer a :class:`KafkaBus` creates.

    The defaults suit Apache Kafka (whose brokers refuse a session timeout below
    ``group.min.session.timeout.ms``, 6 s by default) and Tansu. On Tansu a member's join is
    held for about half the session timeout (at least ~1 s), so tests shorten
    ``session_timeout_ms`` (e.g. 2000 ms), which only Tansu accepts: see ``docs/bus.md``.
    """

    #: A member that sends no heartbeat for this long is dropped and its partitions move.
    session_timeout_ms: int = 6000
    #: Must stay well below the session timeout (a third of it, as Kafka recommends).
    heartbeat_interval_ms: int = 2000
    #: Longest time between two polls before the member is considered stuck (Kafka's
    #: default); also how long a rebalance waits for busy members to rejoin.
    max_poll_interval_ms: int = 300_000
    #: How long the broker may hold a fetch waiting for data; bounds poll latency.
    fetch_max_wait_ms: int = 100
    max_partition_fetch_bytes: int = 1024 * 1024
    #: Bound on a synchronous offset commit before it is reported as failed.
    commit_timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class ProducerTuning:
    """Batching and timeouts of the producer; ``acks=all`` and retries are not tunable."""

    #: Records are grouped per partition up to this size (bytes) in one request.
    batch_size: int = 512 * 1024
    #: Wait this long for a batch to fill when publishers send concurrently; a
    #: :meth:`KafkaBus.publish` call flushes at its end, so it never waits for linger alone.
    linger_ms: int = 5
    max_request_size: int = 1024 * 1024
    #: ``None``, ``"gzip"``, ``"lz4"``, ``"zstd"`` or ``"snappy"`` (the last three need
    #: their Python codec installed).
    compression_type: str | None = None
    #: Upper bound on retries for one record before its publish fails.
    delivery_timeout_ms: int = 60_000
    request_timeout_ms: int = 30_000
    #: How long ``send`` may block for metadata or buffer space.
    max_block_ms: int = 30_000


@functools.cache
def _warn_if_crc32c_is_slow() -> None:
    """kafka-python checksums every batch with CRC-32C, in pure Python unless ``crc32c`` is
    installed; that costs about six times the throughput (docs/performance.md)."""
    if importlib.util.find_spec("crc32c") is None:
        log.warning(
            "the crc32c package is missing: kafka-python computes record-batch checksums "
            "in pure Python, which cuts bus throughput about sixfold; install crc32c"
        )


class KafkaPublishError(PublishError):
    """A :class:`PublishError` that says which records failed and why."""

    def __init__(self, failures: Sequence[tuple[Record, BaseException]], total: int) -> None:
        self.failures = list(failures)
        shown = "; ".join(
            f"{record.topic}[{record.key}]: {type(error).__name__}: {error}"
            for record, error in self.failures[:5]
        )
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(f"{len(self.failures)} of {total} records not confirmed: {shown}{more}")


class KafkaBus:
    """The bus on a Kafka-protocol cluster (Apache Kafka in production, Tansu in tests)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 6,
        replication_factor: int = 1,
        client_id: str = "cityos",
        consumer_tuning: ConsumerTuning | None = None,
        producer_tuning: ProducerTuning | None = None,
        idempotence: bool = True,
    ) -> None:
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._client_id = client_id
        self.consumer_tuning = consumer_tuning or ConsumerTuning()
        self.producer_tuning = producer_tuning or ProducerTuning()
        self._idempotence_requested = idempotence
        self._idempotent = False
        self._lock = threading.Lock()
        self._producer: Any = None
        self._admin: Any = None
        self._known_topics: set[str] = set()
        self._subscriptions: list[KafkaSubscription] = []
        self._closed = False

    @property
    def kind(self) -> str:
        return "kafka"

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    @property
    def idempotent(self) -> bool:
        """Whether the producer runs idempotent (known once the producer exists)."""
        self._ensure_producer()
        return self._idempotent

    # -- publishing -----------------------------------------------------------------
    def publish(self, records: Sequence[Record]) -> None:
        """Send every record, flush, then raise :class:`KafkaPublishError` if any failed."""
        if not records:
            return
        self.ensure_topics({record.topic for record in records})
        producer = self._ensure_producer()
        send = producer.send
        pending: list[tuple[Record, Any]] = []
        failures: list[tuple[Record, BaseException]] = []
        for position, record in enumerate(records):
            try:
                future = send(record.topic, value=record.value, key=record.key.encode())
                pending.append((record, future))
            except KafkaError as exc:
                # Stop here: later records of the same key must not overtake this one.
                failures.append((record, exc))
                skipped = BusError("not sent: an earlier record of the batch failed")
                failures.extend((later, skipped) for later in records[position + 1 :])
                break
        # A flush timeout is not fatal here: the futures still pending are reported below.
        with contextlib.suppress(KafkaError):
            producer.flush(timeout=self.producer_tuning.delivery_timeout_ms / 1000 + 5)
        for record, future in pending:
            if not future.is_done:
                failures.append((record, BusError("no confirmation within the delivery timeout")))
            elif future.failed():
                failures.append((record, future.exception))
        if failures:
            raise KafkaPublishError(failures, len(records))

    def _ensure_producer(self) -> Any:
        with self._lock:
            if self._closed:
                raise BusError("the bus is closed")
            if self._producer is None:
                self._producer = self._make_producer()
            return self._producer

    def _make_producer(self) -> Any:
        _warn_if_crc32c_is_slow()
        tuning = self.producer_tuning
        config: dict[str, Any] = {
            "bootstrap_servers": self._bootstrap,
            "client_id": f"{self._client_id}-producer",
            "acks": "all",
            "retries": 2_147_483_647,
            "batch_size": tuning.batch_size,
            "linger_ms": tuning.linger_ms,
            "max_request_size": tuning.max_request_size,
            "compression_type": tuning.compression_type,
            "delivery_timeout_ms": tuning.delivery_timeout_ms,
            "request_timeout_ms": tuning.request_timeout_ms,
            "max_block_ms": tuning.max_block_ms,
        }
        try:
            if self._idempotence_requested:
                try:
                    producer = KafkaProducer(**config, enable_idempotence=True)
                    self._idempotent = True
                    return producer
                except (KafkaConfigurationError, UnsupportedVersionError) as exc:
                    log.warning(
                        "the broker at %s does not support the idempotent producer (%s); "
                        "publishing without it: a retried batch may be written twice",
                        self._bootstrap,
                        exc,
                    )
            # Without idempotence only one request in flight keeps per-key order on retry.
            self._idempotent = False
            return KafkaProducer(
                **config, enable_idempotence=False, max_in_flight_requests_per_connection=1
            )
        except KafkaError as exc:
            raise BusError(f"cannot connect a producer to {self._bootstrap}: {exc}") from exc

    # -- topics ---------------------------------------------------------------------
    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create missing topics with the configured partitions (existing ones are kept)."""
        missing = sorted(set(topics) - self._known_topics)
        if not missing:
            return
        with self._lock:
            if self._closed:
                raise BusError("the bus is closed")
            if self._admin is None:
                self._admin = self._make_admin()
            admin = self._admin
        spec = {"num_partitions": self._partitions, "replication_factor": self._replication_factor}
        try:
            response = admin.create_topics(
                {topic: dict(spec) for topic in missing}, raise_errors=False
            )
            created = []
            for result in response["topics"]:
                if result["error_code"] == 0:
                    created.append(result["name"])
                elif result["error_code"] != _TOPIC_ALREADY_EXISTS:
                    raise BusError(
                        f"cannot create topic {result['name']}: "
                        f"error {result['error_code']} {result.get('error_message') or ''}"
                    )
            if created:
                admin.wait_for_topics(created)
        except KafkaError as exc:
            raise BusError(f"cannot create topics {missing}: {exc}") from exc
        with self._lock:
            self._known_topics.update(missing)

    def _make_admin(self, **overrides: Any) -> Any:
        config: dict[str, Any] = {
            "bootstrap_servers": self._bootstrap,
            "client_id": f"{self._client_id}-admin",
        }
        config.update(overrides)
        try:
            return KafkaAdminClient(**config)
        except KafkaError as exc:
            raise BusError(f"cannot reach the Kafka cluster at {self._bootstrap}: {exc}") from exc

    # -- consuming ------------------------------------------------------------------
    def subscribe(self, group: str, topics: Sequence[str]) -> KafkaSubscription:
        """Join ``group``; the partitions arrive with the first polls (the group join)."""
        self.ensure_topics(topics)
        subscription = KafkaSubscription(self, group, tuple(topics))
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if not s.closed]
            self._subscriptions.append(subscription)
        return subscription

    def _consumer_config(self, group: str) -> dict[str, Any]:
        tuning = self.consumer_tuning
        return {
            "bootstrap_servers": self._bootstrap,
            "client_id": f"{self._client_id}-{group}",
            "group_id": group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": tuning.session_timeout_ms,
            "heartbeat_interval_ms": tuning.heartbeat_interval_ms,
            "max_poll_interval_ms": tuning.max_poll_interval_ms,
            "fetch_max_wait_ms": tuning.fetch_max_wait_ms,
            "max_partition_fetch_bytes": tuning.max_partition_fetch_bytes,
        }

    # -- lifecycle ------------------------------------------------------------------
    def check(self) -> str:
        """Describe the cluster, or raise :class:`BusError` within about three seconds."""
        admin = self._make_admin(
            bootstrap_timeout_ms=_CHECK_TIMEOUT_MS, request_timeout_ms=_CHECK_TIMEOUT_MS
        )
        try:
            cluster = admin.describe_cluster()
            topics = admin.list_topics()
        except KafkaError as exc:
            raise BusError(f"Kafka at {self._bootstrap} does not answer: {exc}") from exc
        finally:
            admin.close()
        return (
            f"kafka cluster {cluster.get('cluster_id')} at {self._bootstrap}: "
            f"{len(cluster.get('brokers', []))} broker(s), {len(topics)} topics"
        )

    def close(self) -> None:
        """Flush and close the producer, then close every open subscription.

        Call it once the threads using the subscriptions have stopped polling.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
            subscriptions, self._subscriptions = self._subscriptions, []
        try:
            if producer is not None:
                producer.flush(timeout=self.producer_tuning.delivery_timeout_ms / 1000)
                producer.close()
        finally:
            for subscription in subscriptions:
                subscription.close()
            if admin is not None:
                admin.close()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python has no stubs
    """Forgets what a member polled or committed on partitions it gives up.

    kafka-python calls it on its I/O thread, hence the subscription's lock.
    """

    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        self._subscription._forget(revoked)

    def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        return None

    def on_partitions_lost(self, lost: Iterable[Any]) -> None:
        self._subscription._forget(lost)


class KafkaSubscription:
    """One member of a consumer group: a ``KafkaConsumer`` used by a single thread."""

    def __init__(self, bus: KafkaBus, group: str, topics: tuple[str, ...]) -> None:
        self._group = group
        self.topics = topics
        self._commit_timeout_ms = bus.consumer_tuning.commit_timeout_ms
        self._lock = threading.Lock()
        #: next offset to read per partition, from the records handed out since the
        #: last rebalance or rewind (what ``commit()`` without deliveries stores)
        self._polled: dict[tuple[str, int], int] = {}
        #: offsets this member committed, so an older batch never moves them back
        self._committed: dict[tuple[str, int], int] = {}
        self.closed = False
        _warn_if_crc32c_is_slow()
        try:
            self._consumer: Any = KafkaConsumer(**bus._consumer_config(group))
            self._consumer.subscribe(list(topics), listener=_Listener(self))
        except KafkaError as exc:
            raise BusError(f"cannot join group {group} at {bus.bootstrap}: {exc}") from exc

    @property
    def group(self) -> str:
        return self._group

    def assignment(self) -> set[tuple[str, int]]:
        if self.closed:
            return set()
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def lag(self) -> dict[str, int]:
        if self.closed:
            return {}
        behind: dict[str, int] = {}
        for tp in self._consumer.assignment():
            # Both are local: the high watermark from the last fetch, our own position.
            end = self._consumer.highwater(tp)
            if end is None:
                continue
            try:
                offset = self._consumer.position(tp, timeout_ms=0)
            except KafkaError:
                continue  # no position yet (just assigned): nothing to say
            if offset is None:
                continue
            behind[tp.topic] = behind.get(tp.topic, 0) + max(0, int(end) - int(offset))
        return behind

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Delivery]:
        if self.closed:
            return []
        try:
            batches = self._consumer.poll(
                timeout_ms=max(0, int(timeout * 1000)), max_records=max_records
            )
        except KafkaError as exc:
            raise BusError(f"poll failed for group {self._group}: {exc}") from exc
        deliveries: list[Delivery] = []
        append = deliveries.append
        positions: dict[tuple[str, int], int] = {}
        for tp, records in batches.items():
            topic, partition = tp.topic, tp.partition
            for record in records:
                key = record.key
                append(
                    Delivery(
                        topic,
                        partition,
                        record.offset,
                        None if key is None else key.decode(),
                        record.value,
                        record.timestamp,
                    )
                )
            if records:
                positions[(topic, partition)] = records[-1].offset + 1
        if positions:
            with self._lock:
                self._polled.update(positions)
        return deliveries

    def commit(self, deliveries: Sequence[Delivery] | None = None) -> None:
        """Commit past ``deliveries`` (max offset + 1 per partition), or past all polled.

        Raises :class:`CommitFailedError` when a partition is no longer assigned to this
        member (the broker would accept such a commit from a current member and move the
        new owner's offsets) or when the group rebalanced since.
        """
        if self.closed:
            raise CommitFailedError(f"this member of group {self._group} is closed")
        if deliveries is None:
            with self._lock:
                offsets = dict(self._polled)
        else:
            offsets = {}
            for delivery in deliveries:
                tp = (delivery.topic, delivery.partition)
                offsets[tp] = max(offsets.get(tp, 0), delivery.offset + 1)
        assigned = self.assignment()
        lost = sorted(tp for tp in offsets if tp not in assigned)
        if lost:
            raise CommitFailedError(
                f"partitions {lost} are no longer assigned to this member of group "
                f"{self._group}; their records will be delivered to the new owner"
            )
        with self._lock:
            request = {
                tp: offset for tp, offset in offsets.items() if offset > self._committed.get(tp, -1)
            }
        if not request:
            return
        try:
            self._consumer.commit(
                offsets={
                    TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                    for (topic, partition), offset in request.items()
                },
                timeout_ms=self._commit_timeout_ms,
            )
        except KafkaError as exc:
            raise CommitFailedError(
                f"group {self._group} could not commit {request}: {type(exc).__name__}: {exc}"
            ) from exc
        with self._lock:
            self._committed.update(request)

    def rewind(self) -> None:
        """Seek every assigned partition back to its committed offset (or the beginning)."""
        if self.closed:
            return
        try:
            for tp in self._consumer.assignment():
                committed = self._consumer.committed(tp)
                if committed is None:
                    self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, committed)
        except KafkaError as exc:
            raise BusError(f"rewind failed for group {self._group}: {exc}") from exc
        with self._lock:
            self._polled.clear()

    def close(self) -> None:
        """Leave the group at once (no commit); the partitions go to the other members."""
        if self.closed:
            return
        self.closed = True
        try:
            self._consumer.close(autocommit=False)
        except KafkaError as exc:
            log.warning("closing a consumer of group %s failed: %s", self._group, exc)

    def _forget(self, partitions: Iterable[Any]) -> None:
        with self._lock:
            for tp in partitions:
                key = (tp.topic, tp.partition)
                self._polled.pop(key, None)
                self._committed.pop(key, None)
