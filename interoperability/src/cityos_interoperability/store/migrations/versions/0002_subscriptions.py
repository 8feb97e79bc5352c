"""NGSI-LD subscriptions and their notification status.

Revision ID: interop0002
Revises: interop0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "interop0002"
down_revision = "interop0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE cityos_interop.subscription_revision")
    op.execute(
        """
        CREATE TABLE cityos_interop.subscriptions (
            tenant text NOT NULL,
            id text NOT NULL,
            document jsonb NOT NULL,
            context jsonb,
            is_active boolean NOT NULL DEFAULT true,
            expires_at timestamptz,
            time_interval double precision,
            next_run_at timestamptz,
            revision bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            modified_at timestamptz NOT NULL DEFAULT now(),
            times_sent bigint NOT NULL DEFAULT 0,
            times_failed bigint NOT NULL DEFAULT 0,
            last_notification timestamptz,
            last_success timestamptz,
            last_failure timestamptz,
            last_status text,
            last_failure_reason text,
            PRIMARY KEY (tenant, id)
        )
        """
    )
    # The periodic scheduler claims due rows with this index.
    op.execute(
        "CREATE INDEX subscriptions_due ON cityos_interop.subscriptions (next_run_at) "
        "WHERE time_interval IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE cityos_interop.subscriptions")
    op.execute("DROP SEQUENCE cityos_interop.subscription_revision")
