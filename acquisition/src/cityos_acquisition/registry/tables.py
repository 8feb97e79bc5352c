"""The registry's tables, in the acquisition layer's own PostgreSQL schema."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "acquisition"

metadata = MetaData(schema=SCHEMA)

groups = Table(
    "config_groups",
    metadata,
    Column("tenant", String, primary_key=True),
    Column("service_path", String, primary_key=True),
    Column("resource", String, primary_key=True),
    Column("apikey", String, primary_key=True),
    Column("document", JSONB, nullable=False),
    Column("lorawan_application", String),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("config_groups_apikey", "apikey"),
    Index("config_groups_lorawan", "lorawan_application"),
)

devices = Table(
    "devices",
    metadata,
    Column("tenant", String, primary_key=True),
    Column("device_id", String, primary_key=True),
    Column("service_path", String, nullable=False),
    Column("apikey", String),
    Column("dev_eui", String),
    Column("lorawan_application", String),
    Column("document", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("devices_device_id", "device_id"),
    Index("devices_dev_eui", "dev_eui"),
    Index("devices_lorawan", "lorawan_application", "device_id"),
)
