"""Appending to, reading and verifying the hash-chained audit log in PostgreSQL.

Appending locks the tenant's chain head (``SELECT … FOR UPDATE``) so that concurrent
consumers extend each chain one record at a time; events already recorded (same event id,
a redelivery) are skipped, which makes the consumer idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert

from cityos_kernel.events.envelope import Envelope
from cityos_kernel.events.payloads import AuditEventV1
from cityos_support.audit.chain import (
    GENESIS,
    HASHED_FIELDS,
    ChainBreak,
    Checkpoint,
    StoredRecord,
    content_hash,
    link_hash,
    verify_chain,
)
from cityos_support.audit.signing import CheckpointSigner
from cityos_support.audit.tables import audit_checkpoints, audit_heads, audit_records

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerificationReport:
    """What ``cityos audit verify`` found."""

    tenants: int
    records: int
    checkpoints: int
    breaks: list[ChainBreak]

    @property
    def ok(self) -> bool:
        return not self.breaks


class AuditStore:
    """The audit log tables."""

    def __init__(self, engine: Engine, signer: CheckpointSigner, *, checkpoint_every: int) -> None:
        self._engine = engine
        self._signer = signer
        self._checkpoint_every = checkpoint_every

    # -- writing ----------------------------------------------------------------------
    def append(self, events: Sequence[Envelope[AuditEventV1]]) -> int:
        """Record events in one transaction; returns how many were new."""
        if not events:
            return 0
        added = 0
        with self._engine.begin() as connection:
            known = set(
                connection.execute(
                    select(audit_records.c.event_id).where(
                        audit_records.c.event_id.in_([str(event.id) for event in events])
                    )
                ).scalars()
            )
            for tenant in sorted({event.tenant for event in events}):
                fresh = [e for e in events if e.tenant == tenant and str(e.id) not in known]
                # A batch may carry the same event twice (redelivery inside one poll).
                unique = list({str(e.id): e for e in fresh}.values())
                if unique:
                    added += self._append_tenant(connection, tenant, unique)
        return added

    def _append_tenant(
        self, connection: Connection, tenant: str, events: Sequence[Envelope[AuditEventV1]]
    ) -> int:
        connection.execute(
            insert(audit_heads)
            .values(tenant=tenant, seq=0, record_hash=GENESIS)
            .on_conflict_do_nothing(index_elements=["tenant"])
        )
        head = connection.execute(
            select(audit_heads).where(audit_heads.c.tenant == tenant).with_for_update()
        ).one()
        seq, previous = int(head.seq), str(head.record_hash)
        recorded_at = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for event in events:
            seq += 1
            payload = event.payload
            fields: dict[str, Any] = {
                "tenant": tenant,
                "seq": seq,
                "event_id": str(event.id),
                "event_time": event.time,
                "recorded_at": recorded_at,
                "source": event.source,
                "subject": payload.subject,
                "client": payload.client,
                "action": payload.action,
                "target": payload.target,
                "outcome": payload.outcome,
                "correlation_id": event.correlation_id,
                "details": payload.details,
            }
            own = content_hash(fields)
            record_hash = link_hash(previous, own)
            rows.append(
                {
                    **fields,
                    "content_hash": own,
                    "previous_hash": previous,
                    "record_hash": record_hash,
                }
            )
            previous = record_hash
        connection.execute(audit_records.insert(), rows)
        checkpointed = int(head.checkpointed_seq)
        if seq // self._checkpoint_every > checkpointed // self._checkpoint_every:
            self._checkpoint(connection, tenant, seq, previous)
            checkpointed = seq
        connection.execute(
            audit_heads.update()
            .where(audit_heads.c.tenant == tenant)
            .values(seq=seq, record_hash=previous, checkpointed_seq=checkpointed)
        )
        return len(rows)

    def _checkpoint(self, connection: Connection, tenant: str, seq: int, record_hash: str) -> None:
        connection.execute(
            audit_checkpoints.insert().values(
                tenant=tenant,
                seq=seq,
                record_hash=record_hash,
                signed_at=datetime.now(UTC),
                key_id=self._signer.key_id,
                signature=self._signer.sign(tenant, seq, record_hash),
            )
        )

    def checkpoint_moved_chains(self) -> int:
        """Sign a checkpoint for every chain that grew since its last one; returns how many."""
        signed = 0
        with self._engine.begin() as connection:
            heads = connection.execute(
                select(audit_heads)
                .where(audit_heads.c.seq > audit_heads.c.checkpointed_seq)
                .with_for_update(skip_locked=True)
            ).all()
            for head in heads:
                self._checkpoint(connection, head.tenant, int(head.seq), str(head.record_hash))
                connection.execute(
                    audit_heads.update()
                    .where(audit_heads.c.tenant == head.tenant)
                    .values(checkpointed_seq=head.seq)
                )
                signed += 1
        return signed

    # -- reading ----------------------------------------------------------------------
    def query(
        self,
        *,
        tenants: frozenset[str] | None,
        since: datetime | None = None,
        until: datetime | None = None,
        subject: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Records in time order, filtered in SQL (tenants None: every tenant)."""
        query = select(audit_records).order_by(audit_records.c.event_time, audit_records.c.id)
        if tenants is not None:
            query = query.where(audit_records.c.tenant.in_(sorted(tenants)))
        if since is not None:
            query = query.where(audit_records.c.event_time >= since)
        if until is not None:
            query = query.where(audit_records.c.event_time < until)
        if subject is not None:
            query = query.where(audit_records.c.subject == subject)
        with self._engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query.limit(limit))]

    def _records(self, connection: Connection, tenant: str) -> Generator[StoredRecord, None, None]:
        query = (
            select(audit_records)
            .where(audit_records.c.tenant == tenant)
            .order_by(audit_records.c.seq)
            .execution_options(yield_per=1000)
        )
        with connection.execute(query) as result:
            for row in result:
                yield _stored(row._mapping)

    def verify(self, tenant: str | None = None) -> VerificationReport:
        """Recompute every chain (or one tenant's) and check the signed checkpoints."""
        breaks: list[ChainBreak] = []
        total = 0
        checkpoint_count = 0
        # One snapshot for the whole walk: appends running meanwhile must not look like gaps.
        snapshot = self._engine.connect().execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        with snapshot as connection, connection.begin():
            tenants = sorted(
                set(connection.execute(select(audit_heads.c.tenant)).scalars())
                | set(connection.execute(select(audit_records.c.tenant).distinct()).scalars())
            )
            if tenant is not None:
                tenants = [t for t in tenants if t == tenant]
            for name in tenants:
                pinned: dict[int, str] = {}
                for row in connection.execute(
                    select(audit_checkpoints).where(audit_checkpoints.c.tenant == name)
                ):
                    checkpoint = Checkpoint(
                        tenant=row.tenant,
                        seq=int(row.seq),
                        record_hash=row.record_hash,
                        signed_at=row.signed_at,
                        key_id=row.key_id,
                        signature=row.signature,
                    )
                    checkpoint_count += 1
                    if not self._signer.verify(checkpoint):
                        breaks.append(
                            ChainBreak(name, checkpoint.seq, "checkpoint signature is invalid")
                        )
                        continue
                    pinned[checkpoint.seq] = checkpoint.record_hash
                records = self._records(connection, name)
                checked, found = verify_chain(name, records, pinned)
                records.close()
                total += checked
                head_seq = connection.execute(
                    select(audit_heads.c.seq).where(audit_heads.c.tenant == name)
                ).scalar()
                if found is None and head_seq is not None and int(head_seq) != checked:
                    found = ChainBreak(
                        name, checked + 1, f"the chain has {head_seq} records, {checked} remain"
                    )
                if found is not None:
                    breaks.append(found)
        breaks.sort(key=lambda b: (b.tenant, b.seq))
        return VerificationReport(
            tenants=len(tenants), records=total, checkpoints=checkpoint_count, breaks=breaks
        )


def _stored(mapping: Any) -> StoredRecord:
    return StoredRecord(
        fields={name: mapping[name] for name in HASHED_FIELDS},
        content_hash=mapping["content_hash"],
        previous_hash=mapping["previous_hash"],
        record_hash=mapping["record_hash"],
    )
