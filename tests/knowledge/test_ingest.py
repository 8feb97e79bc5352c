"""The ingest consumer on the in-memory bus and a real PostgreSQL+PostGIS."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from cityos_kernel.bus import MemoryBus, Record
from cityos_kernel.bus.consumer import ConsumerRunner, Handler, Message
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.events.topics import ENTITIES_CHANGED, OBSERVATIONS, PLATFORM_DEADLETTER
from cityos_knowledge.ingest.consumer import GROUP, ingest_consumer, ingest_consumers
from cityos_knowledge.outbox.relay import OutboxRelay
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import attribute_instances, attributes, outbox
from tests.knowledge.ingest_helpers import (
    START,
    VOCAB,
    count_instances,
    current_values,
    entity_documents,
    observation,
    outbox_events,
    publish,
)

pytestmark = pytest.mark.postgres

POINT = {"type": "Point", "coordinates": [2.17, 41.38]}


@pytest.fixture
def bus() -> Iterator[MemoryBus]:
    adapter = MemoryBus(partitions=3)
    try:
        yield adapter
    finally:
        adapter.close()


def consume_all(bus: MemoryBus, store: KnowledgeStore) -> ConsumerRunner:
    """Run the ingest consumer's loop body until the topic is drained and committed."""
    runner = ConsumerRunner(bus, ingest_consumer(store, bus))
    subscription = bus.subscribe(GROUP, [OBSERVATIONS.name])
    try:
        while deliveries := subscription.poll(500, timeout=0.05):
            runner.process(subscription, deliveries)
    finally:
        subscription.close()
    return runner


def test_observations_become_current_state_history_and_change_events(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    publish(
        bus,
        [
            observation("urn:ngsi-ld:WeatherObserved:1", 0, location=POINT),
            observation("urn:ngsi-ld:WeatherObserved:1", 15),
            observation("urn:ngsi-ld:WeatherObserved:2", 0, temperature=-3.5),
        ],
    )
    consume_all(bus, knowledge_store)

    assert count_instances(knowledge_store) == 4
    assert current_values(knowledge_store) == {
        ("urn:ngsi-ld:WeatherObserved:1", "temperature"): 35.0,
        ("urn:ngsi-ld:WeatherObserved:1", "https://uri.etsi.org/ngsi-ld/location"): POINT,
        ("urn:ngsi-ld:WeatherObserved:2", "temperature"): -3.5,
    }
    document = entity_documents(knowledge_store)["urn:ngsi-ld:WeatherObserved:1"]
    assert document["type"] == [VOCAB + "WeatherObserved"]
    assert document[VOCAB + "temperature"] == {
        "type": "Property",
        "value": 35.0,
        "observedAt": "2026-11-01T00:15:00Z",
        "unitCode": "CEL",
    }
    assert document["https://uri.etsi.org/ngsi-ld/location"]["value"] == POINT

    events = outbox_events(knowledge_store)
    assert sorted((e["payload"]["entity_id"], e["payload"]["change"]) for e in events) == [
        ("urn:ngsi-ld:WeatherObserved:1", "created"),
        ("urn:ngsi-ld:WeatherObserved:2", "created"),
    ]
    assert {e["type"] for e in events} == {"knowledge.entities.changed"}
    # The envelopes are assembled in SQL: each must still be what the topic's schema says.
    decoded = [ENTITIES_CHANGED.decode(orjson.dumps(event)) for event in events]
    assert {d.payload.entity["id"] for d in decoded if d.payload.entity} == {
        "urn:ngsi-ld:WeatherObserved:1",
        "urn:ngsi-ld:WeatherObserved:2",
    }
    assert len({d.id for d in decoded}) == 2 and all(d.source == "knowledge" for d in decoded)


def test_the_relay_publishes_the_outbox_after_commit_and_deletes_what_it_published(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    listener = bus.subscribe("test-listener", [ENTITIES_CHANGED.name])
    publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", 0)])
    consume_all(bus, knowledge_store)
    relay = OutboxRelay(knowledge_store, bus)
    assert relay.relay_once() == 1
    assert relay.relay_once() == 0
    [delivery] = listener.poll(10, timeout=0.5)
    event = ENTITIES_CHANGED.decode(delivery.value)
    assert delivery.key == "urn:ngsi-ld:WeatherObserved:1"
    assert event.payload.change == "created"
    assert event.payload.entity is not None
    assert event.payload.entity["id"] == "urn:ngsi-ld:WeatherObserved:1"
    with knowledge_store.engine.connect() as connection:
        assert connection.execute(select(outbox.c.id)).all() == []


def test_the_relay_service_publishes_on_its_own_when_woken_by_the_commit(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    listener = bus.subscribe("test-listener", [ENTITIES_CHANGED.name])
    relay = OutboxRelay(knowledge_store, bus, interval=30.0)
    relay.start()
    try:
        publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", 0)])
        consume_all(bus, knowledge_store)
        # The 30 s interval is far away: only the NOTIFY sent at commit can wake it.
        received = listener.poll(10, timeout=5.0)
    finally:
        relay.stop()
    assert [d.key for d in received] == ["urn:ngsi-ld:WeatherObserved:1"]


def test_replaying_the_same_batch_changes_nothing_and_emits_nothing(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    batch = [observation("urn:ngsi-ld:WeatherObserved:1", minute) for minute in range(0, 60, 15)]
    publish(bus, batch)
    consume_all(bus, knowledge_store)
    before = (count_instances(knowledge_store), len(outbox_events(knowledge_store)))
    schema = knowledge_store.tenants.lookup(None)
    with knowledge_store.engine.connect() as raw:
        modified = bind_schema(raw, schema).execute(select(attributes.c.modified_at)).all()

    publish(bus, batch)  # the same observations delivered again
    consume_all(bus, knowledge_store)

    assert before == (4, 1)
    assert (count_instances(knowledge_store), len(outbox_events(knowledge_store))) == before
    with knowledge_store.engine.connect() as raw:
        assert bind_schema(raw, schema).execute(select(attributes.c.modified_at)).all() == modified


def test_a_late_observation_joins_history_without_rolling_back_the_current_value(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", 30, temperature=25.0)])
    consume_all(bus, knowledge_store)
    publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", 10, temperature=11.0)])
    consume_all(bus, knowledge_store)
    assert count_instances(knowledge_store) == 2
    assert current_values(knowledge_store) == {
        ("urn:ngsi-ld:WeatherObserved:1", "temperature"): 25.0
    }
    assert len(outbox_events(knowledge_store)) == 1


def test_a_consumer_dying_after_the_database_commit_loses_and_duplicates_nothing(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    publish(
        bus,
        [observation(f"urn:ngsi-ld:WeatherObserved:{n % 7}", n) for n in range(50)],
    )
    spec = ingest_consumer(knowledge_store, bus)
    crashed = bus.subscribe(GROUP, [OBSERVATIONS.name])
    first = crashed.poll(30, timeout=0.5)
    # The handler commits its transaction; the process dies before the offsets commit.
    spec.handler([Message(OBSERVATIONS.decode(d.value), d) for d in first])
    assert count_instances(knowledge_store) == len(first)
    events_at_crash = outbox_events(knowledge_store)
    crashed.close()  # leaves the group without committing

    runner = consume_all(bus, knowledge_store)

    assert runner.failures == 0
    assert count_instances(knowledge_store) == 50
    events = outbox_events(knowledge_store)
    # The redelivered part produced no second event for what was already applied.
    assert events[: len(events_at_crash)] == events_at_crash
    later = events[len(events_at_crash) :]
    applied_first = {d.key for d in first}
    assert all(
        e["payload"]["change"] == "updated" or e["payload"]["entity_id"] not in applied_first
        for e in later
    )
    assert len(current_values(knowledge_store)) == 7


def test_an_observation_the_store_cannot_take_is_dead_lettered_and_the_rest_applied(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    dead = bus.subscribe("test-dead", [PLATFORM_DEADLETTER.name])
    bad_polygon = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}
    publish(
        bus,
        [
            observation("urn:ngsi-ld:WeatherObserved:good", 0),
            observation("urn:ngsi-ld:WeatherObserved:bad", 0, location=bad_polygon),
        ],
    )
    consume_all(bus, knowledge_store)
    assert set(entity_documents(knowledge_store)) == {"urn:ngsi-ld:WeatherObserved:good"}
    [letter] = dead.poll(10, timeout=0.5)
    payload = PLATFORM_DEADLETTER.decode(letter.value).payload
    assert "linear ring" in payload.reason
    assert payload.consumer_group == GROUP
    assert orjson.loads(payload.payload)["payload"]["entity_id"] == (
        "urn:ngsi-ld:WeatherObserved:bad"
    )


def test_observations_of_two_tenants_land_in_their_own_schemas(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", 0)], tenant="city-a")
    publish(bus, [observation("urn:ngsi-ld:WeatherObserved:2", 0)], tenant="city-b")
    consume_all(bus, knowledge_store)
    assert set(entity_documents(knowledge_store, "city-a")) == {"urn:ngsi-ld:WeatherObserved:1"}
    assert set(entity_documents(knowledge_store, "city-b")) == {"urn:ngsi-ld:WeatherObserved:2"}
    assert {e["tenant"] for e in outbox_events(knowledge_store)} == {"city-a", "city-b"}


def test_an_entity_gains_the_new_type_an_observation_carries(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    publish(bus, [observation("urn:ngsi-ld:Device:1", 0, entity_type="Device")])
    consume_all(bus, knowledge_store)
    publish(
        bus,
        [
            observation(
                "urn:ngsi-ld:Device:1",
                5,
                entity_type="AirQualityObserved",
                extra=[ObservedAttribute(name="no2", value=40, observed_at=START)],
            )
        ],
    )
    consume_all(bus, knowledge_store)
    document = entity_documents(knowledge_store)["urn:ngsi-ld:Device:1"]
    assert document["type"] == [VOCAB + "Device", VOCAB + "AirQualityObserved"]
    assert document[VOCAB + "no2"]["value"] == 40


def test_text_values_with_tabs_newlines_and_backslashes_survive_copy(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    tricky = 'line one\nline\ttwo \\N back\\slash "quoted" \r end'
    publish(
        bus,
        [
            observation(
                "urn:ngsi-ld:WeatherObserved:1",
                0,
                extra=[ObservedAttribute(name="note", value=tricky, observed_at=START)],
            )
        ],
    )
    consume_all(bus, knowledge_store)
    schema = knowledge_store.tenants.lookup(None)
    with knowledge_store.engine.connect() as raw:
        stored = (
            bind_schema(raw, schema)
            .execute(
                select(attribute_instances.c.value).where(
                    attribute_instances.c.name == VOCAB + "note"
                )
            )
            .scalar_one()
        )
    assert stored == tricky
    assert current_values(knowledge_store)[("urn:ngsi-ld:WeatherObserved:1", "note")] == tricky


def test_two_relays_publish_each_event_once_in_order(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    listener = bus.subscribe("test-listener", [ENTITIES_CHANGED.name])
    relays = [OutboxRelay(knowledge_store, bus, interval=0.1) for _ in range(2)]
    for relay in relays:
        relay.start()
    try:
        for minute in range(5):
            publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", minute)])
            consume_all(bus, knowledge_store)
        received: list[int] = []
        deadline = time.monotonic() + 10
        while len(received) < 5 and time.monotonic() < deadline:
            received.extend(
                ENTITIES_CHANGED.decode(d.value).payload.entity[VOCAB + "temperature"]["value"]
                for d in listener.poll(10, timeout=0.2)
            )
        time.sleep(0.5)
        assert sorted(relay.leader for relay in relays) == [False, True]
        received.extend(
            ENTITIES_CHANGED.decode(d.value).payload.entity[VOCAB + "temperature"]["value"]
            for d in listener.poll(10, timeout=0.2)
        )
    finally:
        for relay in relays:
            relay.stop()
    assert received == [20.0, 21.0, 22.0, 23.0, 24.0]
    with knowledge_store.engine.connect() as connection:
        assert connection.execute(select(outbox.c.id)).all() == []


def test_an_entity_deleted_through_the_api_comes_back_with_new_observations(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    from cityos_knowledge.service import KnowledgeService

    publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", 0)])
    consume_all(bus, knowledge_store)
    KnowledgeService(knowledge_store).delete_entity(None, "urn:ngsi-ld:WeatherObserved:1")
    publish(bus, [observation("urn:ngsi-ld:WeatherObserved:1", 5, temperature=30.0)])
    consume_all(bus, knowledge_store)
    document = entity_documents(knowledge_store)["urn:ngsi-ld:WeatherObserved:1"]
    assert document[VOCAB + "temperature"]["value"] == 30.0
    assert [e["payload"]["change"] for e in outbox_events(knowledge_store)] == [
        "created",
        "deleted",
        "created",
    ]


def _raw_observation(entity: str, attribute: str) -> bytes:
    """An envelope written by hand: JSON that pydantic accepts but no model would produce."""
    return (
        b'{"type":"acquisition.observations","schema_version":1,"source":"test",'
        b'"payload":{"entity_id":"' + entity.encode() + b'","entity_type":"WeatherObserved",'
        b'"attributes":[' + attribute.encode() + b"]}}"
    )


def test_values_postgresql_cannot_hold_are_dead_lettered_not_retried_forever(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    dead = bus.subscribe("test-dead", [PLATFORM_DEADLETTER.name])
    at = '"observed_at":"2026-11-01T00:00:00Z"'
    cases = {
        "urn:x:nan": '"value":NaN',
        "urn:x:inf": '"value":1e400',
        "urn:x:nul": '"value":"a\\u0000b"',
        "urn:x:\\u0000": '"value":1',
        "urn:x:ok": '"value":"a\\\\u0000b"',  # a backslash and "u0000": fine
    }
    bus.publish(
        [
            Record(
                OBSERVATIONS.name, entity, _raw_observation(entity, f'{{"name":"t",{value},{at}}}')
            )
            for entity, value in cases.items()
        ]
    )
    runner = consume_all(bus, knowledge_store)
    assert runner.failures == 0
    assert set(entity_documents(knowledge_store)) == {"urn:x:ok"}
    assert current_values(knowledge_store) == {("urn:x:ok", "t"): "a\\u0000b"}
    reasons = [PLATFORM_DEADLETTER.decode(d.value).payload.reason for d in dead.poll(10, 0.5)]
    assert len(reasons) == 4
    assert sum("not a JSON number" in reason for reason in reasons) == 2
    assert sum("NUL" in reason for reason in reasons) == 2


def test_an_id_name_or_dataset_id_too_long_to_index_is_dead_lettered_and_the_rest_applied(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    # Random text does not compress, so 3,000 characters exceed btree's ~2,700-byte entries.
    too_long = secrets.token_urlsafe(3_000)[:3_000]
    dead = bus.subscribe("test-dead", [PLATFORM_DEADLETTER.name])
    publish(
        bus,
        [
            observation("urn:ngsi-ld:WeatherObserved:before", 0),
            observation("urn:ngsi-ld:WeatherObserved:" + too_long, 0),
            observation(
                "urn:ngsi-ld:WeatherObserved:name",
                0,
                extra=[ObservedAttribute(name=too_long, value=1.0, observed_at=START)],
            ),
            observation(
                "urn:ngsi-ld:WeatherObserved:dataset",
                0,
                extra=[
                    ObservedAttribute(
                        name="humidity", value=0.5, dataset_id=too_long, observed_at=START
                    )
                ],
            ),
            observation("urn:ngsi-ld:WeatherObserved:after", 0),
        ],
    )
    runner = consume_all(bus, knowledge_store)
    assert runner.failures == 0
    assert set(entity_documents(knowledge_store)) == {
        "urn:ngsi-ld:WeatherObserved:before",
        "urn:ngsi-ld:WeatherObserved:after",
    }
    assert count_instances(knowledge_store) == 2
    letters = [PLATFORM_DEADLETTER.decode(d.value).payload for d in dead.poll(10, 0.5)]
    reasons = sorted(letter.reason.split()[0] for letter in letters)
    assert reasons == ["attribute", "attribute", "entity"]
    assert all("bytes long; at most 768 bytes" in letter.reason for letter in letters)
    assert all(len(letter.reason) < 300 for letter in letters)  # not the whole value


def test_a_long_random_string_value_is_applied_with_the_rest_of_its_batch(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    # Random text does not compress: 10,000 characters are far over a btree entry, and a
    # string value is legitimate data, so it is stored (not dead-lettered) - ADR 0019.
    long_value = secrets.token_urlsafe(10_000)[:10_000]
    dead = bus.subscribe("test-dead", [PLATFORM_DEADLETTER.name])
    publish(
        bus,
        [
            observation("urn:ngsi-ld:WeatherObserved:before", 0),
            observation(
                "urn:ngsi-ld:WeatherObserved:long",
                0,
                extra=[ObservedAttribute(name="note", value=long_value, observed_at=START)],
            ),
            observation("urn:ngsi-ld:WeatherObserved:after", 0),
        ],
    )
    runner = consume_all(bus, knowledge_store)
    assert runner.failures == 0
    assert dead.poll(10, 0.5) == []
    assert set(entity_documents(knowledge_store)) == {
        "urn:ngsi-ld:WeatherObserved:before",
        "urn:ngsi-ld:WeatherObserved:long",
        "urn:ngsi-ld:WeatherObserved:after",
    }
    assert current_values(knowledge_store)[("urn:ngsi-ld:WeatherObserved:long", "note")] == (
        long_value
    )
    assert count_instances(knowledge_store) == 4


def test_numbers_keep_their_json_form_in_the_current_state(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    huge = 2**60 + 1
    publish(
        bus,
        [
            observation(
                "urn:ngsi-ld:WeatherObserved:1",
                0,
                extra=[
                    ObservedAttribute(name="count", value=21, observed_at=START),
                    ObservedAttribute(name="huge", value=huge, observed_at=START),
                    ObservedAttribute(name="flag", value=True, observed_at=START),
                ],
            )
        ],
    )
    consume_all(bus, knowledge_store)
    values = current_values(knowledge_store)
    assert values[("urn:ngsi-ld:WeatherObserved:1", "count")] == 21
    assert values[("urn:ngsi-ld:WeatherObserved:1", "huge")] == huge  # not rounded to a double
    assert values[("urn:ngsi-ld:WeatherObserved:1", "flag")] is True
    schema = knowledge_store.tenants.lookup(None)
    with knowledge_store.engine.connect() as raw:
        rows = bind_schema(raw, schema).execute(
            select(attribute_instances.c.name, attribute_instances.c.value_number)
        )
        numbers = {row.name: row.value_number for row in rows}
    assert numbers[VOCAB + "count"] == 21.0
    assert numbers[VOCAB + "huge"] == float(huge)
    assert numbers[VOCAB + "flag"] is None  # a boolean is not a number


def test_an_observed_at_with_an_offset_goes_to_the_partition_of_its_utc_month(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    # 01:00 on the first of January at +02:00 is still December in UTC.
    local = datetime(2030, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    publish(
        bus,
        [
            ObservationV1(
                entity_id="urn:ngsi-ld:WeatherObserved:1",
                entity_type="WeatherObserved",
                attributes=[ObservedAttribute(name="temperature", value=5.5, observed_at=local)],
            )
        ],
    )
    runner = consume_all(bus, knowledge_store)
    assert runner.failures == 0
    document = entity_documents(knowledge_store)["urn:ngsi-ld:WeatherObserved:1"]
    assert document[VOCAB + "temperature"]["observedAt"] == "2029-12-31T23:00:00Z"
    assert count_instances(knowledge_store) == 1


def test_of_two_values_with_the_same_observed_at_in_a_batch_the_later_is_current(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    publish(
        bus,
        [
            observation("urn:ngsi-ld:WeatherObserved:1", 0, temperature=1.0),
            observation("urn:ngsi-ld:WeatherObserved:1", 0, temperature=2.0),
        ],
    )
    runner = consume_all(bus, knowledge_store)
    assert runner.failures == 0
    assert count_instances(knowledge_store) == 1  # one instance per observedAt
    assert current_values(knowledge_store) == {
        ("urn:ngsi-ld:WeatherObserved:1", "temperature"): 2.0
    }


def test_two_ingest_consumers_share_the_partitions_and_apply_everything_once(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    specs = ingest_consumers(knowledge_store, bus, count=2)
    assert [spec.group for spec in specs] == [GROUP, GROUP]
    handled: list[set[str]] = [set(), set()]

    def counting(member: int, handler: Handler) -> Handler:
        def handle(messages: Sequence[Message]) -> None:
            handler(messages)
            handled[member].update(m.delivery.key for m in messages)

        return handle

    runners = [
        ConsumerRunner(bus, replace(spec, handler=counting(member, spec.handler)))
        for member, spec in enumerate(specs)
    ]
    for runner in runners:
        runner.start()
    try:
        publish(bus, [observation(f"urn:ngsi-ld:WeatherObserved:{n % 20}", n) for n in range(300)])
        deadline = time.monotonic() + 30
        while sum(bus.committed(GROUP).values()) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for runner in runners:
            runner.stop()
    # Both members applied observations, never of the same entity.
    assert all(handled) and not handled[0] & handled[1]
    assert [runner.failures for runner in runners] == [0, 0]
    assert count_instances(knowledge_store) == 300
    values = current_values(knowledge_store)
    # Each entity's observations stay in order in one member: the last one is current.
    assert values == {
        (f"urn:ngsi-ld:WeatherObserved:{e}", "temperature"): 20.0 + max(range(e, 300, 20))
        for e in range(20)
    }
    events = outbox_events(knowledge_store)
    assert sorted(
        e["payload"]["entity_id"] for e in events if e["payload"]["change"] == "created"
    ) == sorted(f"urn:ngsi-ld:WeatherObserved:{e}" for e in range(20))


def test_every_attribute_kind_gets_its_main_member_in_the_document(
    bus: MemoryBus, knowledge_store: KnowledgeStore
) -> None:
    def measured(name: str, kind: Any, value: Any, **extra: Any) -> ObservedAttribute:
        return ObservedAttribute(name=name, kind=kind, value=value, observed_at=START, **extra)

    publish(
        bus,
        [
            observation(
                "urn:ngsi-ld:WeatherObserved:1",
                0,
                extra=[
                    measured("station", "Relationship", "urn:ngsi-ld:Station:7"),
                    measured("category", "VocabProperty", "outdoor"),
                    measured("label", "LanguageProperty", {"en": "north", "es": "norte"}),
                    measured("raw", "JsonProperty", {"a": [1, 2]}),
                    measured("series", "ListProperty", [1.5, 2.5]),
                    measured("status", "Property", "ok", dataset_id="urn:ngsi-ld:Dataset:s"),
                ],
            )
        ],
    )
    runner = consume_all(bus, knowledge_store)
    assert runner.failures == 0
    document = entity_documents(knowledge_store)["urn:ngsi-ld:WeatherObserved:1"]
    observed = "2026-11-01T00:00:00Z"
    assert document[VOCAB + "station"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Station:7",
        "observedAt": observed,
    }
    assert document[VOCAB + "category"]["vocab"] == VOCAB + "outdoor"
    assert document[VOCAB + "label"]["languageMap"] == {"en": "north", "es": "norte"}
    assert document[VOCAB + "raw"]["json"] == {"a": [1, 2]}
    assert document[VOCAB + "series"]["valueList"] == [1.5, 2.5]
    assert document[VOCAB + "status"] == {
        "type": "Property",
        "value": "ok",
        "observedAt": observed,
        "datasetId": "urn:ngsi-ld:Dataset:s",
    }
    schema = knowledge_store.tenants.lookup(None)
    with knowledge_store.engine.connect() as raw:
        rows = bind_schema(raw, schema).execute(
            select(attributes.c.name, attributes.c.value_text, attributes.c.value_number)
        )
        texts = {row.name.removeprefix(VOCAB): (row.value_text, row.value_number) for row in rows}
    # What q filters on: string values in value_text, numbers in value_number.
    assert texts["station"] == ("urn:ngsi-ld:Station:7", None)
    assert texts["category"] == (VOCAB + "outdoor", None)
    assert texts["status"] == ("ok", None)
    assert texts["temperature"] == (None, 20.0)
    assert texts["series"] == (None, None)
