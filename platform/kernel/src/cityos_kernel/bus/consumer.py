"""The consumer loop every layer uses: poll a batch, decode, handle, then commit.

The loop owns the at-least-once contract so that handlers do not have to:

- a record whose envelope fails its topic's schema is handed to the dead-letter handler
  with the reason (and committed past once the dead letter is confirmed): it never crashes
  the consumer and never blocks the records behind it;
- the handler gets the valid envelopes of a batch; offsets are committed only after it
  returns (the handler commits its own database transaction first);
- when the handler raises, nothing is committed, the subscription is rewound to the
  committed offsets and the batch comes again after a back-off.
"""

from __future__ import annotations

import base64
import collections
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from pydantic import BaseModel

from cityos_kernel.bus.port import Bus, CommitFailedError, Delivery, Record, Subscription
from cityos_kernel.events.envelope import Envelope, SchemaError
from cityos_kernel.events.payloads import DeadLetterV1
from cityos_kernel.events.topics import CATALOGUE, PLATFORM_DEADLETTER, Topic
from cityos_kernel.logging import log_context

logger = logging.getLogger(__name__)

#: Raw input kept in a dead letter is capped so one huge message cannot hurt the bus.
DEAD_LETTER_PAYLOAD_LIMIT = 64 * 1024

CONSUMED = Counter("cityos_bus_consumed_total", "Records handled and committed", ["group", "topic"])
DEAD_LETTERED = Counter(
    "cityos_bus_dead_lettered_total",
    "Records handed to the dead-letter handler",
    ["group", "topic"],
)
CONSUMER_LAG = Gauge(
    "cityos_bus_consumer_lag",
    "Records published but not yet handed to a consumer group's members in this process",
    ["group", "topic"],
)
HANDLER_FAILURES = Counter(
    "cityos_bus_handler_failures_total", "Batches whose handler raised (redelivered)", ["group"]
)


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded envelope with the delivery it came from."""

    envelope: Envelope[BaseModel]
    delivery: Delivery


Handler = Callable[[Sequence[Message]], None]


class DeadLetterHandler(Protocol):
    def __call__(self, delivery: Delivery, reason: str, *, group: str) -> None: ...


def dead_letter_payload(
    raw: bytes, *, reason: str, source: str, limit: int = DEAD_LETTER_PAYLOAD_LIMIT, **where: Any
) -> DeadLetterV1:
    """Build a dead letter keeping the raw input as text when possible, base64 otherwise."""
    kept = raw[:limit]
    try:
        text, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    return DeadLetterV1(
        reason=reason,
        source=source,
        payload=text,
        payload_encoding=encoding,
        truncated=len(raw) > limit,
        original_size=len(raw),
        **where,
    )


class PublishingDeadLetter:
    """Default dead-letter handler: publish to ``platform.deadletter.v1`` and wait for it."""

    def __init__(self, bus: Bus, topic: Topic[DeadLetterV1] = PLATFORM_DEADLETTER) -> None:
        self._bus = bus
        self._topic = topic

    def __call__(self, delivery: Delivery, reason: str, *, group: str) -> None:
        payload = dead_letter_payload(
            delivery.value,
            reason=reason,
            source=delivery.topic,
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            consumer_group=group,
        )
        envelope = self._topic.envelope(payload, source=f"consumer:{group}")
        self._bus.publish([Record(self._topic.name, delivery.topic, self._topic.encode(envelope))])


@dataclass
class ConsumerSpec:
    """What a layer asks the runtime to run: a group reading topics into a handler."""

    name: str
    group: str
    topics: Sequence[Topic[Any]]
    handler: Handler
    max_batch: int = 500
    poll_timeout: float = 0.5
    dead_letter: DeadLetterHandler | None = None
    retry_backoff: tuple[float, float] = field(default=(0.5, 30.0))
    #: Held while a batch is decoded. Members of one group in one process may share a lock
    #: (and hold it again for their handler's own pure-Python phase): the decoding of one
    #: then overlaps the others' waits on I/O instead of contending with them for the GIL.
    decode_lock: threading.Lock | None = None


class ConsumerRunner:
    """Runs one :class:`ConsumerSpec` in its own thread until stopped."""

    def __init__(self, bus: Bus, spec: ConsumerSpec) -> None:
        self._bus = bus
        self._spec = spec
        self._dead_letter = spec.dead_letter or PublishingDeadLetter(bus)
        self._topics = {topic.name: topic for topic in spec.topics}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None
        self.failures = 0

    @property
    def name(self) -> str:
        return self._spec.name

    def start(self) -> None:
        self._subscription = self._bus.subscribe(self._spec.group, list(self._topics))
        self._thread = threading.Thread(target=self._run, name=f"consumer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand (handled batches are committed), then leave the group."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def _run(self) -> None:
        assert self._subscription is not None
        subscription = self._subscription
        backoff = self._spec.retry_backoff[0]
        while not self._stop.is_set():
            try:
                deliveries = subscription.poll(self._spec.max_batch, self._spec.poll_timeout)
                if deliveries:
                    self.process(subscription, deliveries)
                self._report_lag(subscription)
                backoff = self._spec.retry_backoff[0]
            except CommitFailedError as exc:
                logger.warning(
                    "consumer %s: commit refused, records will come again: %s", self.name, exc
                )
            except Exception:
                self.failures += 1
                HANDLER_FAILURES.labels(self._spec.group).inc()
                logger.exception("consumer %s: batch failed, retrying in %.1fs", self.name, backoff)
                try:
                    subscription.rewind()
                except Exception:
                    logger.exception("consumer %s: rewind failed", self.name)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._spec.retry_backoff[1])

    def _report_lag(self, subscription: Subscription) -> None:
        for topic_name, behind in subscription.lag().items():
            CONSUMER_LAG.labels(self._spec.group, topic_name).set(behind)

    def process(self, subscription: Subscription, deliveries: Sequence[Delivery]) -> None:
        """Decode, dead-letter the invalid, hand the rest to the handler, then commit."""
        lock = self._spec.decode_lock
        if lock is None:
            messages, invalid = self._decode(deliveries)
        else:
            with lock:
                messages, invalid = self._decode(deliveries)
        for delivery, reason in invalid:  # outside the lock: a dead letter may wait on I/O
            logger.error(
                "consumer %s: dead-lettering %s[%d]@%d: %s",
                self.name,
                delivery.topic,
                delivery.partition,
                delivery.offset,
                reason,
            )
            self._dead_letter(delivery, reason, group=self._spec.group)
            DEAD_LETTERED.labels(self._spec.group, delivery.topic).inc()
        if messages:
            first = messages[0].envelope
            with log_context(tenant=first.tenant, correlation_id=first.correlation_id):
                self._spec.handler(messages)
        subscription.commit(deliveries)
        for topic_name, count in collections.Counter(d.topic for d in deliveries).items():
            CONSUMED.labels(self._spec.group, topic_name).inc(count)

    def _decode(
        self, deliveries: Sequence[Delivery]
    ) -> tuple[list[Message], list[tuple[Delivery, str]]]:
        """The valid envelopes of a batch, and the records that fail their schema (why)."""
        messages: list[Message] = []
        invalid: list[tuple[Delivery, str]] = []
        topics = self._topics
        for delivery in deliveries:
            topic = topics.get(delivery.topic) or CATALOGUE.get(delivery.topic)
            try:
                if topic is None:
                    raise SchemaError(f"no schema known for topic {delivery.topic}")
                messages.append(Message(topic.decode(delivery.value), delivery))
            except SchemaError as exc:
                invalid.append((delivery, exc.reason))
        return messages, invalid
