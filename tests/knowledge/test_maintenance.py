"""The maintenance service keeps every tenant's next months partitioned."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cityos_knowledge.store.database import KnowledgeStore
from cityos_knowledge.store.history import months_around, partition_name
from cityos_knowledge.store.maintenance import StoreMaintenance

pytestmark = pytest.mark.postgres


def partitions(store: KnowledgeStore, schema: str) -> set[str]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n "
                "ON n.oid = p.relnamespace WHERE n.nspname = :schema"
            ),
            {"schema": schema},
        )
        return {row[0] for row in rows}


def test_maintenance_creates_missing_partitions_for_every_tenant(
    knowledge_store: KnowledgeStore,
) -> None:
    schemas = [knowledge_store.tenants.ensure(tenant) for tenant in ("city-a", "city-b")]
    upcoming = months_around(3)[-1]
    for schema in schemas:  # a month that went missing (dropped by an operator, say)
        with knowledge_store.engine.begin() as connection:
            connection.execute(text(f'DROP TABLE "{schema}".{partition_name(upcoming)}'))
    # A new process does not remember partitions, so it finds the gap and fills it.
    fresh = KnowledgeStore(knowledge_store.engine, knowledge_store.settings)
    assert StoreMaintenance(fresh).run_once() == 2
    assert StoreMaintenance(fresh).run_once() == 0
    for schema in schemas:
        assert partition_name(upcoming) in partitions(knowledge_store, schema)
