"""A seeded city per test module: the query tests only read, so they share one database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cityos.embedded import EmbeddedPostgres
from cityos_knowledge.store.database import KnowledgeStore
from tests.knowledge.query.city import City, seed


@pytest.fixture(scope="module")
def city(postgres_server: EmbeddedPostgres, knowledge_template: str) -> Iterator[City]:
    """The Madrid context of :mod:`tests.knowledge.query.city` in tenant ``madrid``."""
    name = f"test_q_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name, template=knowledge_template)
    store = KnowledgeStore.from_url(postgres_server.url(name))
    try:
        schema = store.tenants.ensure("madrid")
        with store.engine.begin() as connection:
            seed(connection, schema)
        yield City(store.engine, schema)
    finally:
        store.close()
        postgres_server.drop_database(name)
