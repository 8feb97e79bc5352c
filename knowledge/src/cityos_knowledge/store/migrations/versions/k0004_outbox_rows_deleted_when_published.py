"""The outbox holds only events not yet published: drop ``sent_at`` and its index (ADR 0067).

The relay now deletes rows in the transaction that publishes them, so every row of
``cityos_knowledge.outbox`` is pending and the primary key gives the publication order. The
rows already published (``sent_at`` set, which the relay used to delete after
``CITYOS_KNOWLEDGE_OUTBOX_KEEP_HOURS``) are deleted here: left in the table, they would look
pending once the column is gone and be published again. Pending rows keep their ids and
are published by the next relay, in order.

The downgrade brings the column back as NULL (every row left is pending) and its partial
index; sent rows deleted by the upgrade are not restored.

Revision ID: k0004
Revises: k0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "k0004"
down_revision = "k0003"
branch_labels = None
depends_on = None

SCHEMA = "cityos_knowledge"


def upgrade() -> None:
    op.execute("DELETE FROM cityos_knowledge.outbox WHERE sent_at IS NOT NULL")
    op.drop_index("outbox_unsent", table_name="outbox", schema=SCHEMA)
    op.drop_column("outbox", "sent_at", schema=SCHEMA)


def downgrade() -> None:
    op.add_column(
        "outbox", sa.Column("sent_at", sa.TIMESTAMP(timezone=True), nullable=True), schema=SCHEMA
    )
    op.create_index(
        "outbox_unsent",
        "outbox",
        ["id"],
        schema=SCHEMA,
        postgresql_where=sa.text("sent_at IS NULL"),
    )
