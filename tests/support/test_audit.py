"""The audit log on real PostgreSQL: consumed from the bus into per-tenant hash chains,
signed checkpoints, and verification that finds the first broken link after tampering."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from cityos.cli import app as cityos_cli
from cityos.migrate import upgrade
from cityos_kernel.bus import MemoryBus
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.database import sqlalchemy_url
from cityos_support.audit.consumer import CheckpointService, audit_consumer
from cityos_support.audit.emitter import AuditEmitter
from cityos_support.audit.signing import CheckpointSigner
from cityos_support.audit.store import AuditStore
from cityos_support.layer import SupportLayer
from tests.fixtures.support import TENANT_A, TENANT_B

SEED = bytes(range(32))


@pytest.fixture
def audit_db(database_url: str) -> Iterator[tuple[str, Engine]]:
    upgrade(database_url, [SupportLayer()])
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        yield database_url, engine
    finally:
        engine.dispose()


def store_for(engine: Engine, *, every: int = 1000, seed: bytes = SEED) -> AuditStore:
    return AuditStore(engine, CheckpointSigner(seed), checkpoint_every=every)


def emit_events(bus: MemoryBus, count: int, *, tenant: str, subject: str = "alice") -> None:
    emitter = AuditEmitter(bus, source="knowledge")
    for number in range(count):
        emitter.emit(
            subject=subject,
            action="entities:write",
            target=f"urn:ngsi-ld:ParkingSpot:{number}",
            outcome="success",
            tenant=tenant,
            details={"attributes": ["status"], "number": number},
        )


def consume_all(bus: MemoryBus, store: AuditStore, expected: int) -> None:
    runner = ConsumerRunner(bus, audit_consumer(store, group="audit-test"))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sum(bus.committed("audit-test").values()) >= expected:
                return
            time.sleep(0.02)
        raise AssertionError("the audit consumer did not commit in time")
    finally:
        runner.stop()


def recorded(engine: Engine, count: int, *, every: int = 1000, seed: bytes = SEED) -> AuditStore:
    """A store holding ``count`` events of tenant A, consumed from the bus."""
    store = store_for(engine, every=every, seed=seed)
    bus = MemoryBus()
    emit_events(bus, count, tenant=TENANT_A)
    consume_all(bus, store, count)
    return store


def tamper(engine: Engine, statement: str) -> None:
    """What an attacker with the table owner's rights does: bypass the append-only trigger."""
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text(statement))


@pytest.mark.postgres
def test_events_from_the_bus_form_a_verifiable_chain_per_tenant(
    audit_db: tuple[str, Engine],
) -> None:
    _, engine = audit_db
    store = store_for(engine, every=4)
    bus = MemoryBus()
    emit_events(bus, 10, tenant=TENANT_A)
    emit_events(bus, 3, tenant=TENANT_B, subject="bob")
    consume_all(bus, store, 13)

    report = store.verify()
    assert report.ok, report.breaks
    assert (report.tenants, report.records) == (2, 13)
    assert report.checkpoints >= 1  # tenant A crossed 4 and 8 (one batch may cross both)
    with engine.connect() as connection:
        seqs = (
            connection.execute(
                text("SELECT seq FROM support_audit_records WHERE tenant = :t ORDER BY seq"),
                {"t": TENANT_B},
            )
            .scalars()
            .all()
        )
    assert seqs == [1, 2, 3]


@pytest.mark.postgres
def test_redelivered_events_are_recorded_once(audit_db: tuple[str, Engine]) -> None:
    _, engine = audit_db
    store = store_for(engine)
    bus = MemoryBus()
    emit_events(bus, 5, tenant=TENANT_A)
    consume_all(bus, store, 5)
    # A second group reads the same events again: nothing new is recorded.
    runner = ConsumerRunner(bus, audit_consumer(store, group="audit-again"))
    runner.start()
    deadline = time.monotonic() + 10
    while sum(bus.committed("audit-again").values()) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    runner.stop()
    report = store.verify()
    assert report.ok and report.records == 5


@pytest.mark.postgres
def test_the_table_refuses_updates_and_deletes(audit_db: tuple[str, Engine]) -> None:
    _, engine = audit_db
    recorded(engine, 2)
    for statement in (
        "UPDATE support_audit_records SET subject = 'mallory'",
        "DELETE FROM support_audit_records",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


@pytest.mark.postgres
def test_a_tampered_row_is_the_first_broken_link(audit_db: tuple[str, Engine]) -> None:
    url, engine = audit_db
    store = recorded(engine, 6)
    assert store.verify().ok

    tamper(
        engine,
        f"UPDATE support_audit_records SET subject = 'mallory' "
        f"WHERE tenant = '{TENANT_A}' AND seq = 4",
    )
    report = store.verify()
    assert not report.ok
    first = report.breaks[0]
    assert (first.tenant, first.seq) == (TENANT_A, 4)
    assert "content does not match" in first.reason

    # The operator's command says the same, with a non-zero exit status.
    result = CliRunner().invoke(
        cityos_cli,
        ["audit", "verify"],
        env={
            "CITYOS_DATABASE_URL": url,
            "CITYOS_AUDIT_SIGNING_KEY": __import__("base64").b64encode(SEED).decode(),
        },
    )
    assert result.exit_code == 1, result.output
    assert f"FIRST BROKEN LINK: tenant {TENANT_A}, record 4" in result.output


@pytest.mark.postgres
def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(
    audit_db: tuple[str, Engine],
) -> None:
    """An attacker who recomputes every hash after the change still fails verification."""
    _, engine = audit_db
    store = recorded(engine, 5, every=5)
    from cityos_support.audit.chain import content_hash, link_hash

    with engine.connect() as connection:
        rows = [
            dict(row._mapping)
            for row in connection.execute(text("SELECT * FROM support_audit_records ORDER BY seq"))
        ]
    rows[1]["subject"] = "mallory"
    previous = rows[0]["record_hash"]
    for row in rows[1:]:
        row["content_hash"] = content_hash(row)
        row["previous_hash"] = previous
        row["record_hash"] = previous = link_hash(previous, row["content_hash"])
        tamper(
            engine,
            f"UPDATE support_audit_records SET subject = '{row['subject']}', "
            f"content_hash = '{row['content_hash']}', previous_hash = '{row['previous_hash']}', "
            f"record_hash = '{row['record_hash']}' WHERE id = {row['id']}",
        )
    report = store.verify()
    assert not report.ok
    assert report.breaks[0].seq == 5
    assert "signed checkpoint" in report.breaks[0].reason


@pytest.mark.postgres
def test_deleted_tail_records_are_detected(audit_db: tuple[str, Engine]) -> None:
    _, engine = audit_db
    store = recorded(engine, 4)
    tamper(engine, "DELETE FROM support_audit_records WHERE seq = 4")
    report = store.verify()
    assert not report.ok
    assert report.breaks[0].seq == 4


@pytest.mark.postgres
def test_checkpoints_signed_with_another_key_do_not_verify(audit_db: tuple[str, Engine]) -> None:
    _, engine = audit_db
    recorded(engine, 3, every=3, seed=os.urandom(32))
    report = store_for(engine).verify()
    assert not report.ok
    assert "signature" in report.breaks[0].reason


@pytest.mark.postgres
def test_the_checkpoint_service_signs_chains_that_moved(audit_db: tuple[str, Engine]) -> None:
    _, engine = audit_db
    store = recorded(engine, 2)
    service = CheckpointService(store, interval=0.05)
    service.start()
    try:
        deadline = time.monotonic() + 5
        while store.verify().checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        service.stop()
    assert store.verify().checkpoints == 1
    assert store.checkpoint_moved_chains() == 0  # nothing moved since
