"""Delivering notifications without letting one receiver hold up the others.

The notifier runs an asyncio loop in its own thread. :meth:`Notifier.submit` (called
from the consumer's thread) puts a notification on the queue of its endpoint — one
bounded queue and one worker task per endpoint (scheme and authority) — so a receiver that
is down or slow only delays its own notifications. A worker sends its queue in order and
retries a failed notification ``notification_attempts`` times with doubling back-off; a
full queue fails the new notification at once instead of growing without bound. Idle
workers end after a minute.

The subscription's status (``timesSent``, ``timesFailed``, ``lastNotification``,
``lastSuccess``, ``lastFailure``, ``status``) is summed in memory and written by
:meth:`SubscriptionStore.record` every ``flush_interval`` seconds and at stop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from prometheus_client import Counter

from cityos_interoperability.settings import InteroperabilitySettings
from cityos_interoperability.subscriptions.rendering import Notification
from cityos_interoperability.subscriptions.store import Outcome, SubscriptionStore
from cityos_interoperability.subscriptions.transports import (
    DeliveryError,
    HttpTransport,
    MqttTransport,
    Transport,
)

logger = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "cityos_ngsild_notifications_total", "NGSI-LD notifications by outcome", ["scheme", "outcome"]
)

IDLE_WORKER_SECONDS = 60.0

EndpointKey = tuple[str, str]
TransportFactory = Callable[[], Mapping[str, Transport]]


def endpoint_key(notification: Notification) -> EndpointKey:
    parts = urlsplit(notification.endpoint.uri)
    return parts.scheme.lower(), parts.netloc.lower()


class Notifier:
    """A background service that delivers notifications (see the module docstring)."""

    name = "ngsi-ld-notifier"

    def __init__(
        self,
        store: SubscriptionStore,
        settings: InteroperabilitySettings,
        *,
        flush_interval: float = 0.2,
        transports: TransportFactory | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._flush_interval = flush_interval
        self._make_transports = transports or self._default_transports
        self._transports: Mapping[str, Transport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._queues: dict[EndpointKey, asyncio.Queue[Notification]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._outcomes: dict[tuple[str | None, str], Outcome] = {}
        self._flusher: asyncio.Task[None] | None = None

    def _default_transports(self) -> Mapping[str, Transport]:
        timeout = self._settings.notification_timeout_seconds
        http, mqtt = HttpTransport(timeout), MqttTransport(timeout)
        return {"http": http, "https": http, "mqtt": mqtt, "mqtts": mqtt}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ngsi-ld-notifier", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._transports = self._make_transports()
        self._flusher = loop.create_task(self._flush_periodically())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    async def _shutdown(self) -> None:
        for task in [*self._workers, *([self._flusher] if self._flusher else [])]:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._fail_queued()
        await self._flush()
        closed = {id(t): t for t in self._transports.values()}
        for transport in closed.values():
            await transport.close()

    def _fail_queued(self) -> None:
        """Notifications still queued at stop count as failed (they were never sent)."""
        now = datetime.now(UTC)
        for queue in self._queues.values():
            while not queue.empty():
                self._fail(queue.get_nowait(), "the notifier stopped", now)
        self._queues.clear()

    # -- submitting ------------------------------------------------------------------------

    def submit(self, notification: Notification) -> None:
        """Queue a notification for delivery (thread-safe, never blocks)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the notifier is not running")
        loop.call_soon_threadsafe(self._enqueue, notification)

    def _enqueue(self, notification: Notification) -> None:
        key = endpoint_key(notification)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(self._settings.notification_queue_size)
            task = asyncio.get_running_loop().create_task(self._work(key, queue))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        try:
            queue.put_nowait(notification)
        except asyncio.QueueFull:
            self._outcome(notification).sent += 1
            self._fail(notification, "the endpoint's queue is full", datetime.now(UTC))

    # -- delivering ------------------------------------------------------------------------

    async def _work(self, key: EndpointKey, queue: asyncio.Queue[Notification]) -> None:
        while True:
            try:
                notification = await asyncio.wait_for(queue.get(), IDLE_WORKER_SECONDS)
            except TimeoutError:
                if queue.empty():
                    self._queues.pop(key, None)
                    return
                continue
            await self._deliver(notification)

    async def _deliver(self, notification: Notification) -> None:
        scheme = notification.endpoint.scheme
        transport = self._transports.get(scheme)
        outcome = self._outcome(notification)
        started = datetime.now(UTC)
        outcome.sent += 1
        outcome.last_notification = started
        if transport is None:
            self._fail(notification, f"no transport for {scheme}", started)
            return
        backoff = self._settings.notification_backoff_seconds
        attempts = self._settings.notification_attempts
        for attempt in range(1, attempts + 1):
            try:
                await transport.send(notification)
            except DeliveryError as exc:
                now = datetime.now(UTC)
                if attempt == attempts or not exc.retryable:
                    self._fail(notification, exc.reason, now)
                    return
                outcome.attempt(now, ok=False, reason=exc.reason)
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
            except Exception as exc:  # a transport bug must not kill the endpoint's worker
                logger.exception("notification to %s failed", notification.endpoint.uri)
                self._fail(notification, f"internal error: {type(exc).__name__}", started)
                return
            else:
                outcome.attempt(datetime.now(UTC), ok=True)
                NOTIFICATIONS.labels(scheme, "sent").inc()
                return

    def _fail(self, notification: Notification, reason: str, at: datetime) -> None:
        outcome = self._outcome(notification)
        outcome.failed += 1
        outcome.attempt(at, ok=False, reason=reason)
        NOTIFICATIONS.labels(notification.endpoint.scheme, "failed").inc()
        logger.info(
            "notification of %s to %s failed: %s",
            notification.subscription_id,
            notification.endpoint.uri,
            reason,
        )

    def _outcome(self, notification: Notification) -> Outcome:
        key = (notification.tenant, notification.subscription_id)
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = self._outcomes[key] = Outcome()
        return outcome

    # -- status ----------------------------------------------------------------------------

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self._flush()
            except Exception:
                logger.exception("writing the notification status failed; will retry")

    async def _flush(self) -> None:
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, {}
        try:
            await asyncio.to_thread(self._store.record, outcomes)
        except Exception:
            for key, outcome in outcomes.items():  # keep them for the next flush
                newer = self._outcomes.get(key)
                if newer is not None:
                    outcome.absorb(newer)
                self._outcomes[key] = outcome
            raise
