"""The knowledge store's shared schema, and the history layout decision.

Creates ``cityos_knowledge`` with the tenant registry, the store settings and the outbox,
then decides how history is stored (TimescaleDB hypertable when the extension can be
enabled, monthly partitions otherwise) and records it. Tenant schemas are created on first
use by ``cityos_knowledge.store.tenants`` with the layout recorded here.

Revision ID: k0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from cityos_knowledge.store.history import decide_layout

revision = "k0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "cityos_knowledge"


def _timestamp() -> sa.TIMESTAMP:
    return sa.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.create_table(
        "tenants",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("schema_name", sa.Text, nullable=False, unique=True),
        sa.Column("layout_version", sa.Integer, nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_table(
        "store_settings",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("decided_at", _timestamp(), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("envelope", JSONB, nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", _timestamp(), nullable=True),
        schema=SCHEMA,
    )
    op.create_index(
        "outbox_unsent",
        "outbox",
        ["id"],
        schema=SCHEMA,
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    decide_layout(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    registry = sa.table("tenants", sa.column("schema_name"), schema=SCHEMA)
    schemas = [row[0] for row in bind.execute(sa.select(registry.c.schema_name))]
    for schema in schemas:
        op.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
