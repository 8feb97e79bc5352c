"""Commands waiting for HTTP (polling) devices, kept across restarts.

Revision ID: acq0003
Revises: acq0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "acq0003"
down_revision = "acq0002"
branch_labels = None
depends_on = None

SCHEMA = "acquisition"


def upgrade() -> None:
    op.create_table(
        "pending_commands",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("device_id", sa.String, nullable=False),
        sa.Column("command_id", sa.String, nullable=False),
        sa.Column("command", sa.String, nullable=False),
        sa.Column("params", JSONB),
        sa.Column("entity_id", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False, server_default="PENDING"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('PENDING', 'DELIVERED')", name="pending_commands_status"),
        schema=SCHEMA,
    )
    # A command id is queued once per tenant: the bus delivers commands at least once.
    op.create_index(
        "pending_commands_command",
        "pending_commands",
        ["tenant", "command_id"],
        unique=True,
        schema=SCHEMA,
    )
    op.create_index(
        "pending_commands_waiting",
        "pending_commands",
        ["tenant", "device_id", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_table("pending_commands", schema=SCHEMA)
