"""The outbox relay: publishes committed outbox rows to the bus, then marks them sent.

One relay per database is active at a time (a session advisory lock on its LISTEN
connection), so events leave in outbox order and per-entity order holds on the bus. Others
wait and take over when its connection goes away. The relay is woken by the NOTIFY the
writing transaction sends at commit, and looks anyway every ``interval`` seconds.

Delivery is at least once: a crash between the bus confirming and the ``sent_at`` update
committing publishes those rows again on restart. Consumers are idempotent.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any

import orjson
import psycopg2
import psycopg2.extensions
from prometheus_client import Counter
from sqlalchemy import text

from cityos_kernel.bus.port import Bus, Record
from cityos_kernel.database import libpq_url
from cityos_knowledge.background import ThreadService
from cityos_knowledge.outbox.writer import CHANNEL
from cityos_knowledge.store.database import KnowledgeStore

logger = logging.getLogger(__name__)

PUBLISHED = Counter("cityos_knowledge_outbox_published_total", "Outbox events published")

#: Session advisory lock key naming the active relay of a database.
LEADER_LOCK = "cityos_knowledge.outbox-relay"

_PENDING = text(
    "SELECT id, topic, key, envelope FROM cityos_knowledge.outbox "
    "WHERE sent_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK_SENT = text("UPDATE cityos_knowledge.outbox SET sent_at = now() WHERE id = ANY(:ids)")
_CLEAN = text(
    "DELETE FROM cityos_knowledge.outbox "
    "WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => :seconds)"
)


class OutboxRelay(ThreadService):
    """A background service publishing the outbox of one knowledge database."""

    name = "knowledge-outbox-relay"

    def __init__(
        self,
        store: KnowledgeStore,
        bus: Bus,
        *,
        interval: float = 1.0,
        keep_hours: float = 24.0,
        batch: int = 500,
    ) -> None:
        super().__init__()
        self._store = store
        self._bus = bus
        self._interval = interval
        self._keep_seconds = keep_hours * 3600
        self._batch = batch
        self._wake = threading.Event()
        self._last_clean = 0.0
        self.leader = False

    def _stopping(self) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Look at the outbox now (an in-process writer just committed events)."""
        self._wake.set()

    def relay_once(self) -> int:
        """Publish every pending row (in batches); return how many were published."""
        total = 0
        while True:
            with self._store.engine.begin() as connection:
                rows = connection.execute(_PENDING, {"limit": self._batch}).all()
                if not rows:
                    return total
                self._bus.publish(
                    [Record(row.topic, row.key, orjson.dumps(row.envelope)) for row in rows]
                )
                connection.execute(_MARK_SENT, {"ids": [row.id for row in rows]})
            PUBLISHED.inc(len(rows))
            total += len(rows)
            if len(rows) < self._batch:
                return total

    def clean(self) -> int:
        """Delete sent rows older than the keep period; return how many."""
        with self._store.engine.begin() as connection:
            return int(connection.execute(_CLEAN, {"seconds": self._keep_seconds}).rowcount)

    def _run(self) -> None:
        backoff = self._interval
        while not self._stop.is_set():
            listener: Any = None
            try:
                listener = self._listen()
                backoff = self._interval
                self._serve(listener)
            except Exception:
                logger.exception("outbox relay failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                self.leader = False
                if listener is not None:
                    try:
                        listener.close()
                    except Exception:
                        logger.debug("closing the relay connection failed", exc_info=True)

    def _listen(self) -> Any:
        url = libpq_url(self._store.engine.url.render_as_string(hide_password=False))
        listener = psycopg2.connect(url)
        listener.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with listener.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        return listener

    def _serve(self, listener: Any) -> None:
        while not self._stop.is_set():
            if not self.leader:
                with listener.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LEADER_LOCK,))
                    self.leader = bool(cursor.fetchone()[0])
                if not self.leader:
                    self._stop.wait(self._interval)
                    continue
                logger.info("outbox relay active")
            self._wake.clear()
            self.relay_once()
            if time.monotonic() - self._last_clean > 600:
                self._last_clean = time.monotonic()
                self.clean()
            self._wait(listener)

    def _wait(self, listener: Any) -> None:
        """Sleep until a NOTIFY, a wake() or the interval, whichever comes first."""
        deadline = time.monotonic() + self._interval
        while not self._stop.is_set() and not self._wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select([listener], [], [], min(remaining, 0.1))
            if readable:
                listener.poll()
                if listener.notifies:
                    listener.notifies.clear()
                    return
