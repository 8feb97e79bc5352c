"""The ingest consumer SIGKILLed between its database commit and its offset commit (Tansu).

A child process runs the real ingest consumer on Kafka; its handler applies a batch (the
database transaction commits) and then blocks, so the process is killed holding a batch
that is in the stores but whose offsets were never committed. A new consumer in the same
group gets that batch again: afterwards every observation is in the history exactly once,
and no change event was written twice.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from cityos_kernel.bus import ConsumerTuning, KafkaBus, Record
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.events.payloads import ObservationV1
from cityos_kernel.events.topics import Topic
from cityos_knowledge.ingest.consumer import ingest_consumer
from cityos_knowledge.store.database import KnowledgeStore
from tests.knowledge.ingest_helpers import count_instances, observation, outbox_events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

TOTAL = 300
ENTITIES = 20
BATCH = 60
TUNING = ConsumerTuning(
    session_timeout_ms=2000, heartbeat_interval_ms=500, max_poll_interval_ms=20_000
)

# Runs the real ingest consumer; after its first batch is committed to the database it
# reports and hangs inside the handler, before the loop could commit the offsets.
CHILD = """
import json, sys, time
from dataclasses import replace
from cityos_kernel.bus import ConsumerTuning, KafkaBus
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.events.payloads import ObservationV1
from cityos_kernel.events.topics import Topic
from cityos_knowledge.ingest.consumer import ingest_consumer
from cityos_knowledge.store.database import KnowledgeStore

bootstrap, database_url, topic_name, group, batch = sys.argv[1:6]
topic = Topic(topic_name, ObservationV1, "entity id", (), ())
bus = KafkaBus(bootstrap, consumer_tuning=ConsumerTuning(
    session_timeout_ms=2000, heartbeat_interval_ms=500, max_poll_interval_ms=20000))
store = KnowledgeStore.from_url(database_url)
spec = ingest_consumer(store, bus)
apply = spec.handler

def handler(messages):
    apply(messages)  # the database transaction is committed when this returns
    print(json.dumps({"applied": len(messages)}), flush=True)
    time.sleep(600)  # killed here: the offsets are never committed

runner = ConsumerRunner(bus, replace(spec, topics=[topic], group=group, handler=handler,
                                     max_batch=int(batch)))
runner.start()
time.sleep(600)
"""


def test_a_killed_ingest_consumer_loses_and_duplicates_nothing(
    kafka_bootstrap: str, knowledge_url: str, knowledge_store: KnowledgeStore, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex
    topic = Topic(f"test.knowledge.observations.{suffix}.v1", ObservationV1, "entity id", (), ())
    group = f"test-knowledge-ingest-{suffix}"
    bus = KafkaBus(kafka_bootstrap, partitions=3, client_id="test-ingest", consumer_tuning=TUNING)
    try:
        bus.publish(
            [
                Record(
                    topic.name,
                    item.entity_id,
                    topic.encode(topic.envelope(item, source="test")),
                )
                for item in (
                    observation(f"urn:ngsi-ld:WeatherObserved:{n % ENTITIES}", n)
                    for n in range(TOTAL)
                )
            ]
        )
        applied = run_child_until_killed(kafka_bootstrap, knowledge_url, topic, group, tmp_path)
        assert 0 < applied < TOTAL
        assert count_instances(knowledge_store) == applied
        events_at_kill = outbox_events(knowledge_store)

        spec = replace(ingest_consumer(knowledge_store, bus), topics=[topic], group=group)
        runner = ConsumerRunner(bus, spec)
        runner.start()
        try:
            wait_for(lambda: count_instances(knowledge_store) == TOTAL, 60)
            time.sleep(1.5)  # a duplicate delivery would show up within this
        finally:
            runner.stop()
    finally:
        bus.close()

    assert count_instances(knowledge_store) == TOTAL
    assert runner.failures == 0
    events = outbox_events(knowledge_store)
    assert events[: len(events_at_kill)] == events_at_kill
    created = collections.Counter(
        e["payload"]["entity_id"] for e in events if e["payload"]["change"] == "created"
    )
    assert set(created.values()) == {1} and len(created) == ENTITIES
    documents = [json.dumps(e["payload"]["entity"], sort_keys=True) for e in events]
    assert len(documents) == len(set(documents)), "a change event was written twice"


def run_child_until_killed(
    bootstrap: str, database_url: str, topic: Topic[ObservationV1], group: str, tmp_path: Path
) -> int:
    stderr_path = tmp_path / "child.stderr"
    command = [sys.executable, "-c", CHILD, bootstrap, database_url, topic.name, group, str(BATCH)]
    with stderr_path.open("wb") as stderr:
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line, f"the child consumer died early:\n{stderr_path.read_text()[-3000:]}"
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return int(json.loads(line)["applied"])


def wait_for(condition: object, timeout: float) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the restarted consumer did not catch up in time")
        time.sleep(0.2)
