"""Tables of the configuration repository (created by the ``support`` Alembic history)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

#: Every version of every key; the current value of a key is its highest version.
config_entries = Table(
    "support_config_entries",
    metadata,
    Column("key", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("comment", Text, nullable=True),
)
