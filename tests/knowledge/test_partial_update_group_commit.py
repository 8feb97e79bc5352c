"""Concurrent partial updates committed together (ADR 0052) on a real PostgreSQL.

What the group commit must keep from one transaction per update: every update's history
instance, one change event per update with the entity before and after it (so the events of
one entity chain up), the last committed value as the current state, and each caller's own
answer (a refused update does not fail the others).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_knowledge.context.partial_update import PartialUpdate, PartialUpdates
from cityos_knowledge.service import BadRequestDataError, KnowledgeService, NotFoundError
from cityos_knowledge.store.database import KnowledgeStore
from tests.fixtures.services import terminate_backend
from tests.knowledge.test_service_partial_update import (
    ENTITY,
    LOCATION,
    SPEED,
    VEHICLE,
    rebuilt_document,
    vehicle,
)

pytestmark = pytest.mark.postgres

OTHER = "urn:ngsi-ld:Vehicle:2"
THIRD = "urn:ngsi-ld:Vehicle:3"
MISSING = "urn:ngsi-ld:Vehicle:404"
V = "https://example.org/vocab/"


def another(entity_id: str) -> dict[str, Any]:
    return {"id": entity_id, "type": VEHICLE, SPEED: {"type": "Property", "value": 0.0}}


def events(store: KnowledgeStore) -> list[tuple[int, Any]]:
    """The outbox in order: (the writing transaction's id, the decoded envelope)."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT xmin::text::bigint, envelope FROM cityos_knowledge.outbox ORDER BY id")
        )
        return [(row[0], ENTITIES_CHANGED.decode(orjson.dumps(row[1]))) for row in rows]


def default_history(store: KnowledgeStore, entity_id: str) -> list[float]:
    schema = store.tenants.lookup("city")
    with store.engine.connect() as connection:
        rows = connection.execute(
            text(
                f'SELECT value_number FROM "{schema}".attribute_instances '
                "WHERE entity_id = :id AND name = :name AND dataset_id = '@none' "
                "ORDER BY observed_at"
            ),
            {"id": entity_id, "name": SPEED},
        )
        return [row[0] for row in rows]


def update(store: KnowledgeStore, entity_id: str, name: str, partial: Any) -> PartialUpdate:
    return PartialUpdate.of(
        schema=store.tenants.lookup("city"),
        tenant="city",
        entity_id=entity_id,
        name=name,
        partial=partial,
    )


def assert_chained(found: list[Any], before: dict[str, Any]) -> None:
    """Each event of one entity starts from the entity the event before it left."""
    previous = before
    for event in found:
        assert event.payload.previous == previous
        previous = event.payload.entity


def test_a_batch_applies_each_update_in_order_and_refuses_only_the_bad_ones(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    knowledge_service.create_entity("city", vehicle())
    knowledge_service.create_entity("city", another(OTHER))
    before = knowledge_service.retrieve_entity("city", ENTITY)
    other_before = knowledge_service.retrieve_entity("city", OTHER)
    start = len(events(knowledge_store))
    observed, later = "2026-11-22T11:00:00Z", "2026-11-22T11:05:00Z"
    batch = [
        update(knowledge_store, ENTITY, SPEED, {"value": 1.0, "observedAt": observed}),
        update(knowledge_store, ENTITY, SPEED, {"value": 2.0}),  # keeps observedAt: replay
        update(knowledge_store, MISSING, SPEED, {"value": 9.0}),
        update(knowledge_store, OTHER, V + "owner", {"value": "x"}),
        update(knowledge_store, OTHER, SPEED, {"value": 3.0}),
        update(knowledge_store, OTHER, LOCATION, {"value": {"type": "Point"}}),
        update(knowledge_store, ENTITY, SPEED, {"value": 4.0, "observedAt": later}),
        update(knowledge_store, OTHER, SPEED, {"value": 5.0}),
    ]

    outcomes = PartialUpdates(knowledge_store.engine, knowledge_store.partitions).apply(batch)

    assert [type(outcome) for outcome in outcomes] == [
        type(None), type(None), NotFoundError, NotFoundError, type(None), NotFoundError,
        type(None), type(None),
    ]  # fmt: skip
    assert "has no attribute" in str(outcomes[5])  # OTHER has no location
    assert default_history(knowledge_store, ENTITY) == [10.0, 1.0, 4.0]
    assert default_history(knowledge_store, OTHER) == [0.0, 3.0, 5.0]  # written at two times
    after = knowledge_service.retrieve_entity("city", ENTITY)
    assert after[SPEED][0] == {"type": "Property", "value": 4.0, "observedAt": later}
    assert after == rebuilt_document(knowledge_store, ENTITY)
    assert knowledge_service.retrieve_entity("city", OTHER)[SPEED]["value"] == 5.0

    written = events(knowledge_store)[start:]
    assert len({transaction for transaction, _ in written}) == 1  # one transaction
    by_entity: dict[str, list[Any]] = defaultdict(list)
    for _, event in written:
        by_entity[event.payload.entity_id].append(event)
    assert [e.payload.entity[SPEED][0]["value"] for e in by_entity[ENTITY]] == [1.0, 2.0, 4.0]
    assert [e.payload.entity[SPEED]["value"] for e in by_entity[OTHER]] == [3.0, 5.0]
    assert_chained(by_entity[ENTITY], before)
    assert_chained(by_entity[OTHER], other_before)
    assert by_entity[ENTITY][-1].payload.entity == after


def test_a_bad_value_in_a_batch_is_refused_alone(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    knowledge_service.create_entity("city", vehicle())
    knowledge_service.create_entity("city", another(OTHER))
    batch = [
        update(knowledge_store, ENTITY, SPEED, {"value": 1.0}),
        update(knowledge_store, OTHER, SPEED, {"type": "Relationship"}),  # needs an object
        update(knowledge_store, OTHER, SPEED, {"value": 2.0}),
    ]
    outcomes = PartialUpdates(knowledge_store.engine, knowledge_store.partitions).apply(batch)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], BadRequestDataError)
    assert outcomes[2] is None
    assert knowledge_service.retrieve_entity("city", OTHER)[SPEED]["value"] == 2.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.005)


def queued_up(updates: PartialUpdates, count: int) -> bool:
    return updates.waiting == count


def waiting_for_a_lock(store: KnowledgeStore) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def holding_the_entity(store: KnowledgeStore, entity_id: str) -> Connection:
    """A connection in a transaction that holds ``entity_id``'s row lock."""
    connection = store.engine.connect()
    connection.begin()
    schema = store.tenants.lookup("city")
    connection.execute(
        text(f'SELECT 1 FROM "{schema}".entities WHERE id = :id FOR UPDATE'),
        {"id": entity_id},
    )
    return connection


def submitter(
    updates: PartialUpdates, outcomes: dict[str, BaseException | None]
) -> Callable[[str, PartialUpdate], threading.Thread]:
    """Submit an update from a new thread, recording its caller's outcome under a label."""

    def submit(label: str, item: PartialUpdate) -> threading.Thread:
        def run() -> None:
            try:
                updates.submit(item)
                outcomes[label] = None
            except Exception as exc:
                outcomes[label] = exc

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    return submit


def test_updates_queued_behind_a_batch_commit_together_and_answer_each_caller(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    knowledge_service.create_entity("city", another(OTHER))
    knowledge_service.create_entity("city", another(THIRD))
    # One batch in flight: everything queued behind it goes in the next (ADR 0052).
    updates = PartialUpdates(knowledge_store.engine, knowledge_store.partitions, in_flight=1)
    start = len(events(knowledge_store))
    outcomes: dict[str, BaseException | None] = {}
    submit = submitter(updates, outcomes)
    holder = holding_the_entity(knowledge_store, OTHER)
    try:
        # The first caller leads and waits for the entity's lock; the others queue up.
        threads = [submit("lead", update(knowledge_store, OTHER, SPEED, {"value": 100.0}))]
        wait_until(lambda: waiting_for_a_lock(knowledge_store) == 1, "the leader waits")
        queued = [
            ("a", update(knowledge_store, OTHER, SPEED, {"value": 101.0})),
            ("b", update(knowledge_store, THIRD, SPEED, {"value": 201.0})),
            ("missing", update(knowledge_store, MISSING, SPEED, {"value": 1.0})),
            ("c", update(knowledge_store, OTHER, SPEED, {"value": 102.0})),
            ("d", update(knowledge_store, THIRD, SPEED, {"value": 202.0})),
        ]
        for count, (label, item) in enumerate(queued, start=1):
            threads.append(submit(label, item))
            wait_until(functools.partial(queued_up, updates, count), f"{count} queued")
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join(60)

    assert {label: type(outcome) for label, outcome in outcomes.items()} == {
        "lead": type(None), "a": type(None), "b": type(None), "missing": NotFoundError,
        "c": type(None), "d": type(None),
    }  # fmt: skip
    transactions: dict[int, list[float]] = defaultdict(list)
    for transaction, event in events(knowledge_store)[start:]:
        transactions[transaction].append(event.payload.entity[SPEED]["value"])
    # The leader's update alone, then everything that queued meanwhile in one transaction.
    assert list(transactions.values()) == [[100.0], [101.0, 201.0, 102.0, 202.0]]
    assert default_history(knowledge_store, OTHER) == [0.0, 100.0, 101.0, 102.0]
    assert default_history(knowledge_store, THIRD) == [0.0, 201.0, 202.0]


def test_a_second_batch_commits_while_the_first_waits_for_a_lock(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    # Two batches in flight (ADR 0068): the one behind a batch stuck on a lock is not held
    # up by it, and the stuck one still applies once the lock is released.
    knowledge_service.create_entity("city", another(OTHER))
    knowledge_service.create_entity("city", another(THIRD))
    updates = PartialUpdates(knowledge_store.engine, knowledge_store.partitions, in_flight=2)
    start = len(events(knowledge_store))
    outcomes: dict[str, BaseException | None] = {}
    submit = submitter(updates, outcomes)
    holder = holding_the_entity(knowledge_store, OTHER)
    try:
        threads = [submit("stuck", update(knowledge_store, OTHER, SPEED, {"value": 100.0}))]
        wait_until(lambda: waiting_for_a_lock(knowledge_store) == 1, "the first batch waits")
        threads.append(submit("free", update(knowledge_store, THIRD, SPEED, {"value": 201.0})))
        threads[1].join(60)
        assert outcomes == {"free": None}  # committed while the first batch still waits
    finally:
        holder.rollback()
        holder.close()
    threads[0].join(60)
    assert outcomes == {"free": None, "stuck": None}
    values = [event.payload.entity[SPEED]["value"] for _, event in events(knowledge_store)[start:]]
    assert values == [201.0, 100.0]
    assert default_history(knowledge_store, OTHER) == [0.0, 100.0]


def test_an_update_that_waited_for_the_lock_merges_onto_what_the_other_writer_committed(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    knowledge_service.create_entity("city", another(OTHER))
    schema = knowledge_store.tenants.lookup("city")
    holder = holding_the_entity(knowledge_store, OTHER)
    try:
        # Another writer changes a member the update does not send, and commits while the
        # update waits for the entity: the update must not undo it.
        holder.execute(
            text(
                f'UPDATE "{schema}".attributes '
                """SET body = body || '{"unitCode": "KMH"}', unit_code = 'KMH' """
                "WHERE entity_id = :id AND name = :name"
            ),
            {"id": OTHER, "name": SPEED},
        )
        patch = threading.Thread(
            target=knowledge_service.patch_attribute,
            args=("city", OTHER, SPEED, {"value": 7.0}),
        )
        patch.start()
        wait_until(lambda: waiting_for_a_lock(knowledge_store) == 1, "the update waits")
        holder.commit()
    finally:
        holder.close()
    patch.join(60)
    assert knowledge_service.retrieve_entity("city", OTHER)[SPEED] == {
        "type": "Property",
        "value": 7.0,
        "unitCode": "KMH",
    }


def test_many_threads_patching_the_same_and_different_entities(
    knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    shared, own = OTHER, [f"urn:ngsi-ld:Vehicle:own{n}" for n in range(4)]
    for entity_id in [shared, *own]:
        knowledge_service.create_entity("city", another(entity_id))
    befores = {
        entity_id: knowledge_service.retrieve_entity("city", entity_id)
        for entity_id in [shared, *own]
    }
    start = len(events(knowledge_store))
    per_thread = 25
    errors: list[BaseException] = []
    refused: list[BaseException] = []

    def work(number: int) -> None:
        for step in range(per_thread):
            value = float(number * 1000 + step + 1)
            try:
                # Even threads all write the shared entity, odd ones their own.
                target = shared if number % 2 == 0 else own[number // 2]
                knowledge_service.patch_attribute("city", target, SPEED, {"value": value})
                if step % 5 == 0:
                    try:
                        knowledge_service.patch_attribute("city", target, V + "no", {"value": 1})
                    except NotFoundError as exc:
                        refused.append(exc)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert len(refused) == 8 * per_thread // 5
    written: dict[str, list[Any]] = defaultdict(list)
    for _, event in events(knowledge_store)[start:]:
        written[event.payload.entity_id].append(event)
    sent = {
        shared: {float(n * 1000 + s + 1) for n in (0, 2, 4, 6) for s in range(per_thread)},
        **{own[n // 2]: {float(n * 1000 + s + 1) for s in range(per_thread)} for n in (1, 3, 5, 7)},
    }
    for entity_id, values in sent.items():
        found = written[entity_id]
        # One event per update, chained, and the last one is the current state.
        assert sorted(e.payload.entity[SPEED]["value"] for e in found) == sorted(values)
        assert_chained(found, befores[entity_id])
        current = knowledge_service.retrieve_entity("city", entity_id)
        assert found[-1].payload.entity == current
        assert current == rebuilt_document(knowledge_store, entity_id)
        # Every update is a history instance (none lost to a shared write time).
        history = default_history(knowledge_store, entity_id)
        assert sorted(history) == sorted({0.0} | values)
        assert len(history) == len(values) + 1


def test_a_lost_connection_fails_its_batch_and_leaves_the_pool(
    knowledge_url: str, knowledge_service: KnowledgeService, knowledge_store: KnowledgeStore
) -> None:
    # The batch runs on the pooled DBAPI connection itself: a backend killed while the
    # connection sits in the pool (a server restart) fails the next batch with SQLAlchemy's
    # error, and the connection is not given back: the batch after it gets a new one.
    knowledge_service.create_entity("city", vehicle())
    store = KnowledgeStore.from_url(knowledge_url, pool_size=1)
    updates = PartialUpdates(store.engine, store.partitions)
    try:
        assert updates.apply([update(store, ENTITY, SPEED, {"value": 1.0})]) == [None]
        with store.engine.connect() as connection:  # the pool's one connection
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            connection.commit()
        terminate_backend(knowledge_url, pid)

        (lost,) = updates.apply([update(store, ENTITY, SPEED, {"value": 2.0})])
        assert isinstance(lost, DBAPIError) and lost.connection_invalidated
        assert updates.apply([update(store, ENTITY, SPEED, {"value": 3.0})]) == [None]
        assert isinstance(store.engine.pool, QueuePool) and store.engine.pool.checkedout() == 0
        speed = knowledge_service.retrieve_entity("city", ENTITY)[SPEED][0]
        assert speed["value"] == 3.0
    finally:
        updates.close()
        store.close()
