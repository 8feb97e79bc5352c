"""A layer's own table, to show histories are applied separately.

Revision ID: ex0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "ex0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE example_things (id text PRIMARY KEY, location geometry(Point, 4326))")


def downgrade() -> None:
    op.execute("DROP TABLE example_things")
