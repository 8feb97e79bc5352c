"""The outbox relay on a real PostgreSQL: what it publishes leaves the outbox (ADR 0067).

Published rows are deleted in the transaction that publishes them, so a bus that refuses a
batch leaves every row in place for the next look (at least once), and a busy relay sends
the events of several commits together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import select, text

from cityos_kernel.bus import Delivery, MemoryBus, Record
from cityos_kernel.events.payloads import EntityChangedV1
from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_knowledge.outbox.relay import _TAKE_NAME, OutboxRelay
from cityos_knowledge.outbox.writer import EntityChange, append_changes
from cityos_knowledge.store.database import KnowledgeStore
from cityos_knowledge.store.tables import outbox

pytestmark = pytest.mark.postgres


class RecordingBus(MemoryBus):
    """The in-memory bus, refusing batches on demand and remembering the batches it took."""

    def __init__(self) -> None:
        super().__init__(partitions=3)
        self.refuse = False
        self.batches: list[int] = []
        self._batches_lock = threading.Lock()

    def publish(self, records: Sequence[Record]) -> None:
        if self.refuse:
            raise ConnectionError("the bus is unreachable")
        super().publish(records)
        with self._batches_lock:
            self.batches.append(len(records))


@pytest.fixture
def bus() -> Iterator[RecordingBus]:
    adapter = RecordingBus()
    try:
        yield adapter
    finally:
        adapter.close()


def write_change(store: KnowledgeStore, entity_id: str) -> None:
    """One committed transaction writing one change event."""
    payload = EntityChangedV1(entity_id=entity_id, entity_types=["T"], change="updated")
    with store.engine.begin() as connection:
        append_changes(connection, [EntityChange("tenant-a", payload)])


def pending_ids(store: KnowledgeStore) -> list[int]:
    with store.engine.connect() as connection:
        return list(connection.execute(select(outbox.c.id).order_by(outbox.c.id)).scalars())


def test_published_rows_leave_the_outbox_and_refused_ones_stay_for_the_next_look(
    bus: RecordingBus, knowledge_store: KnowledgeStore
) -> None:
    listener = bus.subscribe("test-listener", [ENTITIES_CHANGED.name])
    for number in range(3):
        write_change(knowledge_store, f"urn:ngsi-ld:T:{number}")
    written = pending_ids(knowledge_store)
    relay = OutboxRelay(knowledge_store, bus)

    bus.refuse = True
    with pytest.raises(ConnectionError):
        relay.relay_once()
    assert pending_ids(knowledge_store) == written
    assert listener.poll(10, timeout=0.1) == []

    bus.refuse = False
    assert relay.relay_once() == 3
    assert pending_ids(knowledge_store) == []
    deliveries = listener.poll(10, timeout=0.5)
    events = [ENTITIES_CHANGED.decode(delivery.value) for delivery in deliveries]
    assert sorted(event.payload.entity_id for event in events) == [
        f"urn:ngsi-ld:T:{number}" for number in range(3)
    ]
    assert all(event.tenant == "tenant-a" for event in events)
    assert relay.relay_once() == 0


def rows_read(plan: dict[str, Any]) -> int:
    """The rows every scan of an EXPLAIN ANALYZE plan (JSON) produced, summed."""
    own = (
        plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1)
        if "Scan" in plan["Node Type"]
        else 0
    )
    return own + sum(rows_read(child) for child in plan.get("Plans", []))


def test_a_look_reads_one_batch_of_rows_whatever_the_backlog(
    bus: RecordingBus, knowledge_store: KnowledgeStore
) -> None:
    # A backlog (a bulk load's events, a bus outage) must not slow each look down: the
    # relay's statement, prepared while the outbox was empty as in a running relay, reads
    # about one batch of rows with 5,000 pending. (Joined as ``id IN (SELECT …)`` it read
    # every pending row per look, or rescanned the batch per pending row.)
    relay = OutboxRelay(knowledge_store, bus, batch=100)
    pooled = knowledge_store.engine.raw_connection()
    try:
        connection: Any = pooled.dbapi_connection
        assert relay._relay(connection) == 0  # prepares the statement on this connection
        write_change(knowledge_store, "urn:ngsi-ld:T:template")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO cityos_knowledge.outbox (tenant, topic, key, envelope) "
                "SELECT tenant, topic, key, envelope FROM cityos_knowledge.outbox, "
                "generate_series(1, 4999)"
            )
            connection.commit()
            cursor.execute("ANALYZE cityos_knowledge.outbox")
            cursor.execute("SET LOCAL statement_timeout = '20s'")
            cursor.execute(
                "SET LOCAL plan_cache_mode = force_generic_plan; "
                "SET LOCAL enable_seqscan = off; "
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {_TAKE_NAME} (100)"
            )
            (plan,) = cursor.fetchone()[0]
        connection.rollback()  # EXPLAIN ANALYZE deleted a batch
    finally:
        pooled.close()
    assert 100 <= rows_read(plan["Plan"]) <= 300
    assert relay.relay_once() == 5000  # 50 looks
    assert pending_ids(knowledge_store) == []


def start_leading(relay: OutboxRelay) -> None:
    """Start ``relay`` and wait (at most 10 s) until it holds the leader lock."""
    relay.start()
    deadline = time.monotonic() + 10
    while not relay.leader and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_busy_relay_sends_the_events_of_several_commits_together(
    bus: RecordingBus, knowledge_store: KnowledgeStore
) -> None:
    listener = bus.subscribe("test-listener", [ENTITIES_CHANGED.name])
    # A long coalescing wait, so that the test's two commits surely fall inside it.
    relay = OutboxRelay(knowledge_store, bus, interval=30.0, coalesce=2.0)
    start_leading(relay)
    try:
        write_change(knowledge_store, "urn:ngsi-ld:T:first")
        received = listener.poll(10, timeout=5)
        assert [delivery.key for delivery in received] == ["urn:ngsi-ld:T:first"]
        # The relay is busy now: two commits apart from each other go out as one batch.
        write_change(knowledge_store, "urn:ngsi-ld:T:second")
        time.sleep(0.1)
        write_change(knowledge_store, "urn:ngsi-ld:T:third")
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            received.extend(listener.poll(10, timeout=0.2))
    finally:
        relay.stop()
    assert sorted(str(delivery.key) for delivery in received) == [
        "urn:ngsi-ld:T:first",
        "urn:ngsi-ld:T:second",
        "urn:ngsi-ld:T:third",
    ]
    assert bus.batches == [1, 2]
    assert pending_ids(knowledge_store) == []


def test_the_active_relay_vacuums_the_outbox_after_deleting_enough_rows(
    bus: RecordingBus, knowledge_store: KnowledgeStore
) -> None:
    listener = bus.subscribe("test-listener", [ENTITIES_CHANGED.name])
    relay = OutboxRelay(knowledge_store, bus, interval=0.1, coalesce=0.0, vacuum_every=5)
    relay.start()
    try:
        for number in range(6):
            write_change(knowledge_store, f"urn:ngsi-ld:T:{number}")
        received: list[object] = []
        deadline = time.monotonic() + 10
        while len(received) < 6 and time.monotonic() < deadline:
            received.extend(listener.poll(10, timeout=0.2))
        vacuums = 0
        while vacuums == 0 and time.monotonic() < deadline:
            time.sleep(0.2)  # PostgreSQL publishes its table statistics about once a second
            with knowledge_store.engine.connect() as connection:
                vacuums = connection.execute(
                    text(
                        "SELECT vacuum_count FROM pg_stat_user_tables "
                        "WHERE schemaname = 'cityos_knowledge' AND relname = 'outbox'"
                    )
                ).scalar_one()
    finally:
        relay.stop()
    assert len(received) == 6
    assert vacuums >= 1


class BlockingBus(MemoryBus):
    """The in-memory bus holding its first batch until released."""

    def __init__(self) -> None:
        super().__init__(partitions=3)
        self.holding = threading.Event()
        self.release = threading.Event()

    def publish(self, records: Sequence[Record]) -> None:
        if not self.holding.is_set():
            self.holding.set()
            self.release.wait(10)
        super().publish(records)


def test_an_event_committed_while_the_relay_publishes_goes_out_without_waiting_the_interval(
    knowledge_store: KnowledgeStore,
) -> None:
    bus = BlockingBus()
    listener = bus.subscribe("test-listener", [ENTITIES_CHANGED.name])
    # The interval is longer than the test waits: only the commit's NOTIFY can wake it.
    relay = OutboxRelay(knowledge_store, bus, interval=60.0, coalesce=0.0)
    start_leading(relay)
    try:
        write_change(knowledge_store, "urn:ngsi-ld:T:first")
        assert bus.holding.wait(10)
        # Committed while the relay's transaction is open: its NOTIFY reaches the relay's
        # connection with the answer to that transaction's COMMIT.
        write_change(knowledge_store, "urn:ngsi-ld:T:second")
        bus.release.set()
        received: list[Delivery] = []
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:
            received.extend(listener.poll(10, timeout=0.2))
    finally:
        relay.stop()
        bus.close()
    assert [delivery.key for delivery in received] == [
        "urn:ngsi-ld:T:first",
        "urn:ngsi-ld:T:second",
    ]
