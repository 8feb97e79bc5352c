"""The ``cityos_interop.subscriptions`` table (migrations ``interop0002``, ``interop0003``).

One row per (tenant, subscription id). ``document`` is the checked subscription as the
client wrote it and ``context`` the @context it came with; the columns beside them are
what SQL needs to select on (activity, expiry, periodic schedule) and the notification
status the notifier keeps current. ``revision`` comes from a sequence on every change of
what a subscription matches, so a notifier can tell cheaply whether its cache is stale.
"""

from __future__ import annotations

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Boolean,
    Column,
    Double,
    MetaData,
    Sequence,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from cityos_interoperability.store.tables import SCHEMA

metadata = MetaData(schema=SCHEMA)

revisions = Sequence("subscription_revision", schema=SCHEMA, metadata=metadata)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("document", JSONB, nullable=False),
    Column("context", JSONB, nullable=True),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("expires_at", TIMESTAMP(timezone=True), nullable=True),
    Column("time_interval", Double, nullable=True),
    Column("next_run_at", TIMESTAMP(timezone=True), nullable=True),
    Column("revision", BigInteger, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("modified_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("times_sent", BigInteger, nullable=False, server_default=text("0")),
    Column("times_failed", BigInteger, nullable=False, server_default=text("0")),
    Column("last_notification", TIMESTAMP(timezone=True), nullable=True),
    Column("last_success", TIMESTAMP(timezone=True), nullable=True),
    Column("last_failure", TIMESTAMP(timezone=True), nullable=True),
    Column("last_status", Text, nullable=True),
    Column("last_failure_reason", Text, nullable=True),
    # The creator's (or last updater's) read scope, see subscriptions.access; NULL: all.
    Column("data_scope", JSONB, nullable=True),
    schema=SCHEMA,
)
