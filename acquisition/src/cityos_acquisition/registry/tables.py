"""The registry's tables, in the acquisition layer's own PostgreSQL schema."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, String, Table, func, text
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

#: Device events written with the registry change they describe, relayed after the commit
#: (ADR 0028): ``id`` is the publication order, ``sent_at`` NULL until the bus confirmed.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant", String, nullable=False),
    Column("topic", String, nullable=False),
    Column("key", String, nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Index("outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
)

#: Commands waiting for an HTTP (polling) device, kept across restarts (ADR 0027).
pending_commands = Table(
    "pending_commands",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant", String, nullable=False),
    Column("device_id", String, nullable=False),
    Column("command_id", String, nullable=False),
    Column("command", String, nullable=False),
    Column("params", JSONB),
    Column("entity_id", String, nullable=False),
    Column("status", String, nullable=False, server_default="PENDING"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    Index("pending_commands_command", "tenant", "command_id", unique=True),
    Index(
        "pending_commands_waiting",
        "tenant",
        "device_id",
        "id",
        postgresql_where=text("status = 'PENDING'"),
    ),
)
