"""Tables of the audit log (created by the ``support`` Alembic history).

``support_audit_records`` is append-only: a trigger refuses UPDATE and DELETE, and the
hash chain plus signed checkpoints reveal changes made by someone who disabled it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

audit_records = Table(
    "support_audit_records",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("client", Text, nullable=True),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("correlation_id", Text, nullable=True),
    Column("details", JSONB, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("previous_hash", Text, nullable=False),
    Column("record_hash", Text, nullable=False),
    UniqueConstraint("tenant", "seq", name="support_audit_records_tenant_seq"),
    Index("support_audit_records_time", "tenant", "event_time"),
    Index("support_audit_records_subject", "subject", "event_time"),
)

#: The last record of each tenant's chain (locked while appending).
audit_heads = Table(
    "support_audit_heads",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("record_hash", Text, nullable=False),
    Column("checkpointed_seq", BigInteger, nullable=False, server_default="0"),
)

audit_checkpoints = Table(
    "support_audit_checkpoints",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("record_hash", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("key_id", Text, nullable=False),
    Column("signature", Text, nullable=False),
)
