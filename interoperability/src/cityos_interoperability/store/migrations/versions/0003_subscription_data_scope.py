"""The read scope a subscription's notifications are limited to (level-1 authorization).

Revision ID: interop0003
Revises: interop0002
Create Date: 2026-11-22

``data_scope`` holds the readable entity types and visible attributes of the subject who
created or last updated the subscription. Subscriptions stored before this revision keep
NULL, which means unrestricted: they notify as they did until they are next updated.
"""

from __future__ import annotations

from alembic import op

revision = "interop0003"
down_revision = "interop0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cityos_interop.subscriptions ADD COLUMN data_scope jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE cityos_interop.subscriptions DROP COLUMN data_scope")
