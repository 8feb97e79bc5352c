"""The outbox relay: publishes committed outbox rows to the bus, then deletes them.

One relay per database is active at a time (a session advisory lock on its LISTEN
connection), so events leave in outbox order and per-entity order holds on the bus. Others
wait and take over when its connection goes away. The relay is woken by the NOTIFY the
writing transaction sends at commit, and looks anyway every ``interval`` seconds. While
busy (its last look found events) it lets ``coalesce`` seconds pass before the next look, so
that the events of many commits go out in one transaction instead of one each; an event
after a quiet spell goes out at once.

A look is one transaction: one statement deletes the oldest rows (``FOR UPDATE SKIP
LOCKED``) and returns their envelopes as the text they are published as (never decoded in
Python), the bus confirms them, the transaction commits (ADR 0067). Delivery is at least
once: if the bus refuses, or the process dies before the commit, the rows come back and are
published again. Consumers are idempotent.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from prometheus_client import Counter

from cityos_kernel.bus.port import Bus, Record
from cityos_kernel.database import libpq_url
from cityos_knowledge.background import ThreadService
from cityos_knowledge.outbox.writer import CHANNEL
from cityos_knowledge.store.database import KnowledgeStore

logger = logging.getLogger(__name__)

PUBLISHED = Counter("cityos_knowledge_outbox_published_total", "Outbox events published")

#: Session advisory lock key naming the active relay of a database.
LEADER_LOCK = "cityos_knowledge.outbox-relay"

#: The active relay vacuums the outbox after deleting this many rows (see _vacuum).
VACUUM_EVERY = 2000

_VACUUM = "VACUUM (SKIP_LOCKED) cityos_knowledge.outbox"

# The oldest rows, deleted in the transaction that publishes them (it rolls back if the bus
# refuses them). RETURNING gives no order: the relay sorts by id. A prepared statement of
# the relay's connection, planned once.
#
# The ids are taken as an array first (an InitPlan, run once) and the rows deleted by those
# ids: each look reads about ``$1`` index entries, whatever the backlog. Written as
# ``id IN (SELECT …)``, PostgreSQL joins the subquery against a scan of the whole outbox
# (a hash or nested-loop semi join): each look read every pending row, so a backlog (the
# events of a bulk load, a bus outage) took minutes to drain, at ~5,000 rows/s for 100,000
# pending rows, and a generic plan made while the table was small nested a rescan of the
# subquery for every pending row and stalled the relay for good.
_TAKE_NAME = "cityos_outbox_take"
_PREPARE_TAKE = (
    "PREPARE cityos_outbox_take (bigint) AS "
    "DELETE FROM cityos_knowledge.outbox WHERE id = ANY(ARRAY("
    "SELECT id FROM cityos_knowledge.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
    ")) RETURNING id, topic, key, envelope::text"
)
# Planned generically, through the primary key: the statistics of a table emptied as fast as
# it fills make a sequential scan and a sort look cheaper, and that scan reads every dead
# row left since the last vacuum (0.2-1 ms a look under load, against ~0.02 ms by the index).
_TAKE = (
    "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; "
    f"EXECUTE {_TAKE_NAME} (%s)"
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
        coalesce: float = 0.005,
        batch: int = 500,
        vacuum_every: int = VACUUM_EVERY,
    ) -> None:
        super().__init__()
        self._store = store
        self._bus = bus
        self._interval = interval
        self._coalesce = coalesce
        self._batch = batch
        self._vacuum_every = vacuum_every
        self._wake = threading.Event()
        self._deleted = 0
        self.leader = False

    def _stopping(self) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Look at the outbox now (an in-process writer just committed events)."""
        self._wake.set()

    def relay_once(self) -> int:
        """Publish every pending row (in batches); return how many were published."""
        pooled = self._store.engine.raw_connection()
        try:
            return self._relay(pooled.dbapi_connection)
        finally:
            pooled.close()

    def _relay(self, connection: Any) -> int:
        """:meth:`relay_once` on a psycopg2 connection (in autocommit mode or not)."""
        autocommit = connection.autocommit
        connection.autocommit = False
        total = 0
        try:
            while True:
                rows = self._take(connection)
                # Confirmed by the bus before the deletion commits: a refusal raises, the
                # deletion rolls back and the rows wait for the next look.
                if rows:
                    self._bus.publish(
                        [Record(topic, key, text.encode()) for _, topic, key, text in rows]
                    )
                connection.commit()
                PUBLISHED.inc(len(rows))
                total += len(rows)
                if len(rows) < self._batch:
                    return total
        except BaseException:
            if not connection.closed:
                connection.rollback()
            raise
        finally:
            if not connection.closed:
                connection.autocommit = autocommit

    def _take(self, connection: Any) -> list[tuple[int, str, str, str]]:
        """Delete and return the oldest rows (id order), in a transaction left open."""
        with connection.cursor() as cursor:
            try:
                cursor.execute(_TAKE, (self._batch,))
            except psycopg2.errors.InvalidSqlStatementName:  # first look on this connection
                connection.rollback()
                cursor.execute(_PREPARE_TAKE)
                cursor.execute(_TAKE, (self._batch,))
            return sorted(cursor.fetchall())

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
            published = self._relay(listener)
            self._vacuum(listener, published)
            if published and self._coalesce > 0:
                # Busy: let the next commits' events gather (their NOTIFYs are read below).
                self._stop.wait(self._coalesce)
            self._wait(listener)

    def _vacuum(self, listener: Any, deleted: int) -> None:
        """Vacuum the outbox every ``vacuum_every`` deleted rows (:data:`VACUUM_EVERY`).

        Every event leaves a dead ~1.4 KB row behind. Autovacuum looks once a minute: at
        2,000 events/s the table would reach ~170 MB of dead rows in between, and each look
        at the oldest rows would read through them. Vacuumed this often it stays a few
        hundred pages, for about the same vacuuming work in total.
        """
        self._deleted += deleted
        if self._deleted < self._vacuum_every:
            return
        self._deleted = 0
        with listener.cursor() as cursor:
            cursor.execute(_VACUUM)

    def _wait(self, listener: Any) -> None:
        """Sleep until a NOTIFY, a wake() or the interval, whichever comes first."""
        deadline = time.monotonic() + self._interval
        while not self._stop.is_set() and not self._wake.is_set():
            # The look itself runs on this connection: a NOTIFY of a commit made meanwhile
            # arrives with its answers and is already read.
            if listener.notifies:
                listener.notifies.clear()
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select([listener], [], [], min(remaining, 0.1))
            if readable:
                listener.poll()
                if listener.notifies:
                    listener.notifies.clear()
                    return
