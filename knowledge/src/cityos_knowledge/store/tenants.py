"""NGSI-LD tenants: one PostgreSQL schema each, created on first write.

A tenant name never reaches SQL as an identifier: it is validated
(:func:`validate_tenant`), and its schema name is derived from it (:func:`schema_name`) —
a lower-case slug plus a hash, only ``[a-z0-9_]`` — and recorded in
``cityos_knowledge.tenants``. Schema names are quoted anyway wherever they appear in SQL.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading

from sqlalchemy import Connection, Engine, MetaData, select, text
from sqlalchemy.dialects.postgresql import insert

from cityos_kernel.events.envelope import DEFAULT_TENANT
from cityos_knowledge.errors import BadRequestDataError, NonexistentTenantError
from cityos_knowledge.store.history import HistoryLayout, Partitions, create_history
from cityos_knowledge.store.tables import attribute_instances, location_sync, metadata, tenants

logger = logging.getLogger(__name__)

#: The per-tenant layout :func:`create_tenant_schema` builds; migrations upgrade older ones
#: (2: ``attributes_name_text`` indexes a prefix of ``value_text``, revision ``k0002``;
#: 3: ``entity_locations`` and its triggers, revision ``k0003``).
LAYOUT_VERSION = 3

#: URI-ish names: letters, digits and ``_ . : - /``, starting with a letter or digit.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,99}")


def validate_tenant(tenant: str | None) -> str:
    """Return the tenant to use (the default one when none is given) or raise BadRequestData."""
    if tenant is None or tenant == "":
        return DEFAULT_TENANT
    if not TENANT_PATTERN.fullmatch(tenant):
        raise BadRequestDataError(
            "invalid tenant name: use at most 100 letters, digits and the characters "
            "_ . : - / (starting with a letter or digit)"
        )
    return tenant


def schema_name(tenant: str) -> str:
    """The PostgreSQL schema of a (validated) tenant: ``t_<slug>_<hash>``, at most 63 chars."""
    slug = re.sub(r"[^a-z0-9]+", "_", tenant.lower()).strip("_")[:40]
    digest = hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:10]
    return f"t_{slug}_{digest}" if slug else f"t_{digest}"


class TenantRegistry:
    """Finds, and on first write creates, the schema of each tenant of one database."""

    def __init__(
        self,
        engine: Engine,
        layout: HistoryLayout,
        partitions: Partitions,
        *,
        compress_after: str = "7 days",
        retention: str | None = None,
        months_ahead: int = 3,
    ) -> None:
        self._engine = engine
        self._layout = layout
        self._partitions = partitions
        self._compress_after = compress_after
        self._retention = retention
        self._months_ahead = months_ahead
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def known(self, tenant: str) -> str | None:
        """The schema of a tenant this process has already looked up, without any I/O."""
        return self._known.get(tenant)

    def lookup(self, tenant: str | None) -> str:
        """The schema of an existing tenant (NonexistentTenant if absent; default always exists)."""
        name = validate_tenant(tenant)
        schema = self._known.get(name)
        if schema is not None:
            return schema
        with self._engine.connect() as connection:
            schema = connection.execute(
                select(tenants.c.schema_name).where(tenants.c.tenant == name)
            ).scalar_one_or_none()
        if schema is None:
            if name == DEFAULT_TENANT:
                # The default tenant is implicit in NGSI-LD: a fresh platform answers
                # queries on it with empty results, not 404.
                return self.ensure(name)
            raise NonexistentTenantError(f"tenant {name} does not exist")
        with self._lock:
            self._known[name] = str(schema)
        return str(schema)

    def ensure(self, tenant: str | None) -> str:
        """The schema of a tenant, created (committed, in its own transaction) if absent."""
        name = validate_tenant(tenant)
        schema = self._known.get(name)
        if schema is not None:
            return schema
        with self._engine.begin() as connection:
            schema = self._create_if_absent(connection, name)
        with self._lock:
            self._known[name] = schema
        if not self._layout.timescaledb:
            self._partitions.ensure_ahead(schema, self._months_ahead)
        return schema

    def all(self) -> dict[str, str]:
        """Every tenant of the database and its schema."""
        with self._engine.connect() as connection:
            result = connection.execute(select(tenants.c.tenant, tenants.c.schema_name))
            return {tenant: schema for tenant, schema in result}

    def _create_if_absent(self, connection: Connection, name: str) -> str:
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"cityos_knowledge.tenant:{name}"},
        )
        existing = connection.execute(
            select(tenants.c.schema_name).where(tenants.c.tenant == name)
        ).scalar_one_or_none()
        if existing is not None:
            return str(existing)
        schema = schema_name(name)
        create_tenant_schema(
            connection,
            schema,
            self._layout,
            compress_after=self._compress_after,
            retention=self._retention,
            months_ahead=self._months_ahead,
        )
        connection.execute(
            insert(tenants)
            .values(tenant=name, schema_name=schema, layout_version=LAYOUT_VERSION)
            .on_conflict_do_nothing()
        )
        logger.info("tenant %s created in schema %s (%s)", name, schema, self._layout.mode)
        return schema


def create_tenant_schema(
    connection: Connection,
    schema: str,
    layout: HistoryLayout,
    *,
    compress_after: str,
    retention: str | None,
    months_ahead: int,
) -> None:
    """Create a tenant's schema with the current-state tables and the history table."""
    quoted = connection.dialect.identifier_preparer.quote(schema)
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
    current_state = [table for table in metadata.sorted_tables if table is not attribute_instances]
    bound = MetaData(schema=schema)
    for table in current_state:
        table.to_metadata(bound)
    bound.create_all(connection)
    for statement in location_sync(quoted):
        connection.exec_driver_sql(statement)
    create_history(
        connection,
        schema,
        layout,
        compress_after=compress_after,
        retention=retention,
        months_ahead=months_ahead,
    )
