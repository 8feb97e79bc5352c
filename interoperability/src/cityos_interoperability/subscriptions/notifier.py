"""Delivering notifications without letting one receiver hold up the others.

The notifier runs an asyncio loop in its own thread. :meth:`Notifier.submit` (called
from the consumer's thread) puts a notification on the queue of its endpoint — one
bounded queue per endpoint (scheme and authority), drained by
``notification_endpoint_concurrency`` worker tasks — so a receiver that is down or slow
only delays its own notifications. A failed notification is queued again after a doubling
back-off, up to ``notification_attempts`` attempts, while the workers go on with the next
ones; a full queue fails the new notification at once instead of growing without bound.
Idle workers end after a minute.

The subscription's status (``timesSent``, ``timesFailed``, ``lastNotification``,
``lastSuccess``, ``lastFailure``, ``status``) is summed in memory and written by
:meth:`SubscriptionStore.record` as soon as it changes — one statement for everything that
changed meanwhile, so under load the writes coalesce — and at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


@dataclass
class _Job:
    notification: Notification
    attempt: int = 1


@dataclass
class _Endpoint:
    """One endpoint's queue and how many workers drain it."""

    queue: asyncio.Queue[_Job]
    workers: int = 0


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
        self._endpoints: dict[EndpointKey, _Endpoint] = {}
        self._retries: dict[int, tuple[asyncio.TimerHandle, _Job]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._outcomes: dict[tuple[str | None, str], Outcome] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._dirty: asyncio.Event

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
        self._dirty = asyncio.Event()
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
        tasks = [*self._workers, *([self._flusher] if self._flusher else [])]
        for task in tasks:
            task.cancel()
        # Wait for the cancellations to finish (the flusher's wait_for needs a few loop
        # turns): a task still cancelling when the loop closes is destroyed while pending.
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_queued()
        await self._flush()
        closed = {id(t): t for t in self._transports.values()}
        for transport in closed.values():
            await transport.close()

    def _fail_queued(self) -> None:
        """Notifications still queued at stop count as failed (they were never sent)."""
        now = datetime.now(UTC)
        for handle, job in self._retries.values():
            handle.cancel()
            self._fail(job.notification, "the notifier stopped", now)
        self._retries.clear()
        for endpoint in self._endpoints.values():
            while not endpoint.queue.empty():
                job = endpoint.queue.get_nowait()
                if job.attempt == 1:
                    self._outcome(job.notification).sent += 1
                self._fail(job.notification, "the notifier stopped", now)
        self._endpoints.clear()

    # -- submitting ------------------------------------------------------------------------

    def submit(self, notification: Notification) -> None:
        """Queue a notification for delivery (thread-safe, never blocks)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the notifier is not running")
        loop.call_soon_threadsafe(self._enqueue, notification)

    def _enqueue(self, notification: Notification) -> None:
        self._put(_Job(notification))

    def _put(self, job: _Job) -> None:
        key = endpoint_key(job.notification)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = _Endpoint(
                asyncio.Queue(self._settings.notification_queue_size)
            )
        while endpoint.workers < self._settings.notification_endpoint_concurrency:
            endpoint.workers += 1
            task = asyncio.get_running_loop().create_task(self._work(key, endpoint))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        try:
            endpoint.queue.put_nowait(job)
        except asyncio.QueueFull:
            if job.attempt == 1:
                self._outcome(job.notification).sent += 1
            self._fail(job.notification, "the endpoint's queue is full", datetime.now(UTC))

    # -- delivering ------------------------------------------------------------------------

    async def _work(self, key: EndpointKey, endpoint: _Endpoint) -> None:
        while True:
            try:
                job = await asyncio.wait_for(endpoint.queue.get(), IDLE_WORKER_SECONDS)
            except TimeoutError:
                if endpoint.queue.empty():
                    endpoint.workers -= 1
                    if endpoint.workers == 0 and self._endpoints.get(key) is endpoint:
                        del self._endpoints[key]
                    return
                continue
            await self._deliver(job)

    async def _deliver(self, job: _Job) -> None:
        notification = job.notification
        scheme = notification.endpoint.scheme
        transport = self._transports.get(scheme)
        now = datetime.now(UTC)
        if job.attempt == 1:
            outcome = self._outcome(notification)
            outcome.sent += 1
            outcome.last_notification = now
        if transport is None:
            self._fail(notification, f"no transport for {scheme}", now)
            return
        try:
            await transport.send(notification)
        except DeliveryError as exc:
            now = datetime.now(UTC)
            if job.attempt >= self._settings.notification_attempts or not exc.retryable:
                self._fail(notification, exc.reason, now)
                return
            self._outcome(notification).attempt(now, ok=False, reason=exc.reason)
            self._retry_later(_Job(notification, job.attempt + 1))
        except Exception as exc:  # a transport bug must not kill the endpoint's worker
            logger.exception("notification to %s failed", notification.endpoint.uri)
            self._fail(notification, f"internal error: {type(exc).__name__}", now)
        else:
            self._outcome(notification).attempt(datetime.now(UTC), ok=True)
            NOTIFICATIONS.labels(scheme, "sent").inc()

    def _retry_later(self, job: _Job) -> None:
        """Queue ``job`` again after its back-off; the worker goes on meanwhile."""
        delay = self._settings.notification_backoff_seconds * 2 ** (job.attempt - 2)
        loop = asyncio.get_running_loop()

        def retry() -> None:
            self._retries.pop(id(job), None)
            self._put(job)

        self._retries[id(job)] = (loop.call_later(delay, retry), job)

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
        """The pending status change of the notification's subscription (to be written).

        Look it up for every change: a flush may have taken the previous one meanwhile.
        """
        self._dirty.set()
        key = (notification.tenant, notification.subscription_id)
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = self._outcomes[key] = Outcome()
        return outcome

    # -- status ----------------------------------------------------------------------------

    async def _flush_periodically(self) -> None:
        """Write the status as soon as it changes (one statement per round), or retry."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._flush_interval)
            self._dirty.clear()
            try:
                await self._flush()
            except Exception:
                logger.exception("writing the notification status failed; will retry")
                await asyncio.sleep(self._flush_interval)

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
