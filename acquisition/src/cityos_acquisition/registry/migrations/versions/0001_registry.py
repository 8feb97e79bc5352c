"""The acquisition layer's schema: config groups and devices.

Revision ID: acq0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "acq0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "acquisition"


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.create_table(
        "config_groups",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("service_path", sa.String, primary_key=True),
        sa.Column("resource", sa.String, primary_key=True),
        sa.Column("apikey", sa.String, primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_index("config_groups_apikey", "config_groups", ["apikey"], schema=SCHEMA)
    op.create_table(
        "devices",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("device_id", sa.String, primary_key=True),
        sa.Column("service_path", sa.String, nullable=False),
        sa.Column("apikey", sa.String),
        sa.Column("dev_eui", sa.String),
        sa.Column("lorawan_application", sa.String),
        sa.Column("document", JSONB, nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_index("devices_device_id", "devices", ["device_id"], schema=SCHEMA)
    op.create_index("devices_dev_eui", "devices", ["dev_eui"], schema=SCHEMA)
    op.create_index(
        "devices_lorawan", "devices", ["lorawan_application", "device_id"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("devices", schema=SCHEMA)
    op.drop_table("config_groups", schema=SCHEMA)
