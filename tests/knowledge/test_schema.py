"""The knowledge store's schema on a real PostgreSQL+PostGIS: migrations, tenants, history."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg2
import pytest
from alembic import command
from sqlalchemy import insert, select, text

from cityos.migrate import _config, histories, upgrade
from cityos_kernel.events.envelope import DEFAULT_TENANT
from cityos_knowledge.errors import BadRequestDataError, NonexistentTenantError
from cityos_knowledge.layer import KnowledgeLayer
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.history import months_around
from cityos_knowledge.store.tables import attribute_instances, attributes, entities
from cityos_knowledge.store.tenants import schema_name, validate_tenant

pytestmark = pytest.mark.postgres


def _schemas(url: str) -> set[str]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        found = {row[0] for row in cursor.fetchall()}
    connection.close()
    return found


def test_db_upgrade_creates_the_shared_schema_and_records_the_history_layout(
    database_url: str,
) -> None:
    report = upgrade(database_url, [KnowledgeLayer()])
    assert report == ["platform: empty -> 0001", "knowledge: empty -> k0002"]
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT key, value FROM cityos_knowledge.store_settings ORDER BY key")
        settings = dict(cursor.fetchall())
    connection.close()
    # These machines have no TimescaleDB: the fallback is chosen and said so.
    assert settings == {
        "history_detail": "history: partitioned by month (TimescaleDB not installed)",
        "history_mode": "partitioned",
        "toolkit": "off",
    }
    assert upgrade(database_url, [KnowledgeLayer()])[-1] == "knowledge: up to date"


def test_a_tenant_schema_is_created_on_first_write_only(knowledge_store: KnowledgeStore) -> None:
    registry = knowledge_store.tenants
    with pytest.raises(NonexistentTenantError):
        registry.lookup("city-a")
    schema = registry.ensure("city-a")
    assert schema == schema_name("city-a")
    assert registry.lookup("city-a") == schema
    assert registry.ensure("city-a") == schema
    # A second process (fresh registry) finds the same schema.
    other = KnowledgeStore(knowledge_store.engine)
    assert other.tenants.lookup("city-a") == schema
    assert registry.all() == {"city-a": schema}


def test_the_default_tenant_is_used_when_none_is_given(knowledge_store: KnowledgeStore) -> None:
    schema = knowledge_store.tenants.ensure(None)
    assert knowledge_store.tenants.all() == {DEFAULT_TENANT: schema}
    assert knowledge_store.tenants.lookup("") == schema


@pytest.mark.parametrize(
    "hostile",
    [
        'a"; DROP SCHEMA cityos_knowledge CASCADE; --',
        "x'; DROP TABLE cityos_knowledge.tenants; --",
        "tenant with spaces",
        "a" * 101,
        "ténant",
        "-leading-dash",
        "a\x00b",
    ],
)
def test_hostile_tenant_names_are_refused_before_any_sql(
    knowledge_store: KnowledgeStore, knowledge_url: str, hostile: str
) -> None:
    with pytest.raises(BadRequestDataError):
        knowledge_store.tenants.ensure(hostile)
    with pytest.raises(BadRequestDataError):
        validate_tenant(hostile)
    assert knowledge_store.tenants.all() == {}
    assert "cityos_knowledge" in _schemas(knowledge_url)


def test_schema_names_are_safe_identifiers_even_for_odd_valid_tenants() -> None:
    for tenant in ["urn:ngsi-ld:tenant:default", "A/B.c-d:e_f", "9" * 100, "Üx"[1:]]:
        name = schema_name(validate_tenant(tenant))
        assert len(name) <= 63
        assert name.replace("_", "").isalnum() and name.isascii() and name == name.lower()
    assert schema_name("city-a") != schema_name("city_a")


def test_tenant_tables_hold_geometry_and_history_in_monthly_partitions(
    knowledge_store: KnowledgeStore,
) -> None:
    schema = knowledge_store.tenants.ensure("city-a")
    now = datetime.now(UTC)
    with knowledge_store.engine.begin() as raw:
        connection = bind_schema(raw, schema)
        connection.execute(
            insert(entities).values(
                id="urn:ngsi-ld:Sensor:1",
                types=["Sensor"],
                created_at=now,
                modified_at=now,
                entity={"id": "urn:ngsi-ld:Sensor:1"},
            )
        )
        connection.execute(
            insert(attributes).values(
                entity_id="urn:ngsi-ld:Sensor:1",
                name="location",
                kind="GeoProperty",
                value={"type": "Point", "coordinates": [2.17, 41.38]},
                geometry='{"type": "Point", "coordinates": [2.17, 41.38]}',
                body={},
                created_at=now,
                modified_at=now,
            )
        )
        connection.execute(
            insert(attribute_instances).values(
                entity_id="urn:ngsi-ld:Sensor:1",
                name="temperature",
                observed_at=now,
                value_number=21.5,
            )
        )
        geometry = connection.execute(select(attributes.c.geometry)).scalar_one()
        assert '"coordinates":[2.17,41.38]' in geometry
        inside = (
            connection.execute(
                select(attributes.c.entity_id).where(
                    text("ST_Within(geometry, ST_MakeEnvelope(2, 41, 3, 42, 4326))")
                )
            )
            .scalars()
            .all()
        )
        assert inside == ["urn:ngsi-ld:Sensor:1"]
        partitions = (
            raw.execute(
                text(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE nspname = :schema AND relkind = 'r' "
                    "AND relname LIKE 'attribute_instances_p%' "
                    "ORDER BY relname"
                ),
                {"schema": schema},
            )
            .scalars()
            .all()
        )
    expected = [f"attribute_instances_p{m.year:04d}{m.month:02d}" for m in months_around(3)]
    assert partitions == expected


def test_an_instance_in_a_month_without_partition_gets_one_on_demand(
    knowledge_store: KnowledgeStore,
) -> None:
    schema = knowledge_store.tenants.ensure("city-a")
    old = datetime(2019, 2, 14, 12, tzinfo=UTC)
    assert knowledge_store.partitions.ensure(schema, [date(2019, 2, 1)]) == 1
    assert knowledge_store.partitions.ensure(schema, [date(2019, 2, 1)]) == 0
    with knowledge_store.engine.begin() as raw:
        bind_schema(raw, schema).execute(
            insert(attribute_instances).values(
                entity_id="e", name="temperature", observed_at=old, value_number=1.0
            )
        )
        count = (
            bind_schema(raw, schema)
            .execute(text(f'SELECT count(*) FROM "{schema}".attribute_instances_p201902'))
            .scalar_one()
        )
    assert count == 1


def test_readiness_shows_the_history_layout(knowledge_url: str) -> None:
    from cityos_kernel.bus import MemoryBus
    from cityos_kernel.layer import LayerContext
    from cityos_kernel.settings import PlatformSettings

    parts = KnowledgeLayer().build(
        LayerContext(PlatformSettings(), MemoryBus(), knowledge_url, None)
    )
    [check] = [check for check in parts.readiness if check.name == "knowledge"]
    assert check.check() == "history: partitioned by month (TimescaleDB not installed)"


def _text_index(url: str, tenant: str) -> tuple[str, int]:
    """The definition of a tenant's ``attributes_name_text`` and its recorded layout."""
    schema = schema_name(tenant)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            (schema, "attributes_name_text"),
        )
        [(definition,)] = cursor.fetchall()
        cursor.execute(
            "SELECT layout_version FROM cityos_knowledge.tenants WHERE tenant = %s", (tenant,)
        )
        [(version,)] = cursor.fetchall()
    connection.close()
    return definition.replace(schema, "<schema>"), version


def test_k0002_gives_existing_tenants_the_prefix_index_of_new_ones(knowledge_url: str) -> None:
    store = KnowledgeStore.from_url(knowledge_url)
    store.tenants.ensure("city-old")
    store.close()
    [_, knowledge] = histories([KnowledgeLayer()])
    command.downgrade(_config(knowledge, knowledge_url), "k0001")
    old_definition, old_version = _text_index(knowledge_url, "city-old")
    assert "(name, value_text)" in old_definition
    assert old_version == 1

    assert upgrade(knowledge_url, [KnowledgeLayer()])[-1] == "knowledge: k0001 -> k0002"
    store = KnowledgeStore.from_url(knowledge_url)
    store.tenants.ensure("city-new")
    store.close()
    migrated = _text_index(knowledge_url, "city-old")
    assert migrated == _text_index(knowledge_url, "city-new")
    assert '"left"(value_text, 256)' in migrated[0]
    assert migrated[1] == 2
