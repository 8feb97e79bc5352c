"""Index only a prefix of string values, so that a long one cannot fail its write (ADR 0019).

Layout 2 of the tenant schemas: ``attributes_name_text`` on ``(name, left(value_text,
256))`` instead of ``(name, value_text)``, whose entries a random string of about 2,650
bytes or more made too large for btree. Tenant schemas are created on first use with the
current layout (``cityos_knowledge.store.tenants``); this revision rebuilds the index of
every schema the registry records at an older layout and records the new one.

The index is rebuilt inside the migration's transaction: writes to that tenant's
``attributes`` wait for it (seconds per million string values).

Revision ID: k0002
Revises: k0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "k0002"
down_revision = "k0001"
branch_labels = None
depends_on = None

SCHEMA = "cityos_knowledge"
INDEX = "attributes_name_text"
PREFIX = 256  # cityos_knowledge.store.tables.TEXT_INDEX_PREFIX when this revision was written


_REGISTRY = sa.table(
    "tenants", sa.column("schema_name"), sa.column("layout_version"), schema=SCHEMA
)


def _rebuild(columns: str, from_version: int, to_version: int) -> None:
    """Rebuild the index on ``columns`` in every tenant schema at ``from_version``."""
    bind = op.get_bind()
    preparer = bind.dialect.identifier_preparer
    at_version = _REGISTRY.c.layout_version == from_version
    schemas = bind.execute(
        sa.select(_REGISTRY.c.schema_name).where(at_version).order_by(_REGISTRY.c.schema_name)
    )
    for (schema,) in schemas.all():
        quoted = preparer.quote(schema)
        op.execute(f"DROP INDEX IF EXISTS {quoted}.{INDEX}")
        op.execute(
            f"CREATE INDEX {INDEX} ON {quoted}.attributes ({columns}) WHERE value_text IS NOT NULL"
        )
    bind.execute(sa.update(_REGISTRY).where(at_version).values(layout_version=to_version))


def upgrade() -> None:
    _rebuild(f"name, left(value_text, {PREFIX})", from_version=1, to_version=2)


def downgrade() -> None:
    # Fails, as layout 1 did, if a tenant holds a string value too long for the old index.
    _rebuild("name, value_text", from_version=2, to_version=1)
