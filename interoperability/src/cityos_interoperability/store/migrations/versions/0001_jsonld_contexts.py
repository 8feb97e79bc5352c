"""Hosted JSON-LD @contexts (``/jsonldContexts``).

Revision ID: interop0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "interop0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS cityos_interop")
    op.execute(
        """
        CREATE TABLE cityos_interop.jsonld_contexts (
            id text PRIMARY KEY,
            tenant text NOT NULL DEFAULT '',
            document jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            hits bigint NOT NULL DEFAULT 0,
            last_used_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX jsonld_contexts_tenant ON cityos_interop.jsonld_contexts (tenant)")


def downgrade() -> None:
    op.execute("DROP TABLE cityos_interop.jsonld_contexts")
