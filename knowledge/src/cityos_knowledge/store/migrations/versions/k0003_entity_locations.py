"""Keep the geometries of ``attributes`` in a narrow, trigger-kept table for ``near`` (ADR 0064).

Layout 3 of the tenant schemas: ``entity_locations`` (entity, attribute, datasetId, the
geometry and, for Points, a ``point`` position indexed for index-only scans), filled from
``attributes`` and kept in step with it by row triggers on ``attributes`` whose ``WHEN``
clauses skip rows without geometry. Tenant schemas are created on first use with the
current layout (``cityos_knowledge.store.tenants``); this revision adds the table to every
schema the registry records at layout 2, using the table and trigger definitions of
``cityos_knowledge.store.tables`` (a later change to them comes with its own revision).
The history table is not touched: the partitioned and the TimescaleDB layouts are alike.

Revision ID: k0003
Revises: k0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cityos_knowledge.store.tables import entity_locations, location_backfill, location_sync

revision = "k0003"
down_revision = "k0002"
branch_labels = None
depends_on = None

SCHEMA = "cityos_knowledge"

_REGISTRY = sa.table(
    "tenants", sa.column("schema_name"), sa.column("layout_version"), schema=SCHEMA
)


def _schemas(version: int) -> list[str]:
    selected = sa.select(_REGISTRY.c.schema_name).where(_REGISTRY.c.layout_version == version)
    return list(op.get_bind().execute(selected.order_by(_REGISTRY.c.schema_name)).scalars())


def _record(from_version: int, to_version: int) -> None:
    at_version = _REGISTRY.c.layout_version == from_version
    op.get_bind().execute(sa.update(_REGISTRY).where(at_version).values(layout_version=to_version))


def upgrade() -> None:
    bind = op.get_bind()
    preparer = bind.dialect.identifier_preparer
    for schema in _schemas(2):
        quoted = preparer.quote(schema)
        entity_locations.to_metadata(sa.MetaData(schema=schema)).create(bind)
        for statement in location_sync(quoted):
            op.execute(statement)
        op.execute(location_backfill(quoted))
        op.execute(f"ANALYZE {quoted}.entity_locations")
    _record(from_version=2, to_version=3)


def downgrade() -> None:
    preparer = op.get_bind().dialect.identifier_preparer
    for schema in _schemas(3):
        quoted = preparer.quote(schema)
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS entity_locations_{trigger} ON {quoted}.attributes")
        op.execute(f"DROP FUNCTION IF EXISTS {quoted}.entity_locations_sync()")
        op.execute(f"DROP TABLE IF EXISTS {quoted}.entity_locations")
    _record(from_version=3, to_version=2)
