"""The audit path through a real Kafka-protocol broker (Tansu): emit, consume, chain, verify."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import create_engine

from cityos.migrate import upgrade
from cityos_kernel.bus import ConsumerTuning, KafkaBus
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.database import sqlalchemy_url
from cityos_support.audit.consumer import audit_consumer
from cityos_support.audit.emitter import AuditEmitter
from cityos_support.audit.signing import CheckpointSigner
from cityos_support.audit.store import AuditStore
from cityos_support.layer import SupportLayer
from tests.fixtures.support import TENANT_A

TUNING = ConsumerTuning(
    session_timeout_ms=2000, heartbeat_interval_ms=500, max_poll_interval_ms=20_000
)


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.slow
def test_audit_events_cross_kafka_into_a_verifiable_chain(
    kafka_bootstrap: str, database_url: str
) -> None:
    upgrade(database_url, [SupportLayer()])
    engine = create_engine(sqlalchemy_url(database_url))
    store = AuditStore(engine, CheckpointSigner(bytes(32)), checkpoint_every=10)
    bus = KafkaBus(kafka_bootstrap, partitions=3, consumer_tuning=TUNING)
    subject = f"kafka-user-{uuid.uuid4().hex[:8]}"
    runner = ConsumerRunner(bus, audit_consumer(store, group=f"audit-{uuid.uuid4().hex}"))
    try:
        bus.ensure_topics(["support.audit.v1", "platform.deadletter.v1"])
        runner.start()
        emitter = AuditEmitter(bus, source="interoperability")
        for number in range(25):
            emitter.emit(
                subject=subject,
                action="entities:write",
                target=f"urn:ngsi-ld:Streetlight:{number}",
                outcome="success",
                tenant=TENANT_A,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(store.query(tenants=None, subject=subject)) == 25:
                break
            time.sleep(0.2)
    finally:
        runner.stop()
        bus.close()
    recorded = store.query(tenants=None, subject=subject)
    assert len(recorded) == 25
    assert {row["source"] for row in recorded} == {"interoperability"}
    report = store.verify()
    assert report.ok, report.breaks
    assert report.checkpoints >= 1
    engine.dispose()
