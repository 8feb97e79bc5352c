"""LoRaWAN application groups: config groups found by the application of an uplink.

Revision ID: acq0002
Revises: acq0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "acq0002"
down_revision = "acq0001"
branch_labels = None
depends_on = None

SCHEMA = "acquisition"


def upgrade() -> None:
    op.add_column("config_groups", sa.Column("lorawan_application", sa.String), schema=SCHEMA)
    op.create_index(
        "config_groups_lorawan", "config_groups", ["lorawan_application"], schema=SCHEMA
    )
    # Groups written before: their application id from the stored document. The Things
    # Stack's "app@tenant" is matched as "app" (uplinks name the application without it).
    op.execute(
        """
        UPDATE acquisition.config_groups SET lorawan_application = split_part(coalesce(
            document #>> '{lorawan,application_id}',
            document #>> '{internal_attributes,lorawan,application_id}'), '@', 1)
        WHERE coalesce(document #>> '{lorawan,application_id}',
                       document #>> '{internal_attributes,lorawan,application_id}') <> ''
        """
    )
    op.execute(
        "UPDATE acquisition.devices SET lorawan_application = "
        "split_part(lorawan_application, '@', 1) WHERE lorawan_application LIKE '%@%'"
    )


def downgrade() -> None:
    op.drop_index("config_groups_lorawan", "config_groups", schema=SCHEMA)
    op.drop_column("config_groups", "lorawan_application", schema=SCHEMA)
