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
    assert report == ["platform: empty -> 0001", "knowledge: empty -> k0004"]
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

    assert upgrade(knowledge_url, [KnowledgeLayer()])[-1] == "knowledge: k0001 -> k0004"
    store = KnowledgeStore.from_url(knowledge_url)
    store.tenants.ensure("city-new")
    store.close()
    migrated = _text_index(knowledge_url, "city-old")
    assert migrated == _text_index(knowledge_url, "city-new")
    assert '"left"(value_text, 256)' in migrated[0]
    assert migrated[1] == 3


def _locations(url: str, tenant: str) -> tuple[list[tuple[str, ...]], list[tuple[str, str]], int]:
    """A tenant's ``entity_locations`` definition (indexes, triggers), rows and layout."""
    schema = schema_name(tenant)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
            "AND tablename = 'entity_locations' ORDER BY indexname",
            (schema,),
        )
        indexes = [(row[0].replace(schema, "<schema>"),) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND NOT t.tgisinternal ORDER BY tgname",
            (schema,),
        )
        triggers = [(name, d.replace(schema, "<schema>")) for name, d in cursor.fetchall()]
        cursor.execute(
            "SELECT entity_id, ST_AsText(geometry), position::text "
            f'FROM "{schema}".entity_locations ORDER BY entity_id'
        )
        rows = [tuple(row) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT layout_version FROM cityos_knowledge.tenants WHERE tenant = %s", (tenant,)
        )
        [(version,)] = cursor.fetchall()
    connection.close()
    return [*indexes, *triggers], rows, version


def _write_location(store: KnowledgeStore, tenant: str, entity_id: str, wkt: str) -> None:
    schema = store.tenants.ensure(tenant)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with store.engine.begin() as connection:
        connection.execute(
            text(
                f'INSERT INTO "{schema}".attributes (entity_id, name, kind, body, geometry,'
                " created_at, modified_at) VALUES (:id, 'location', 'GeoProperty', '{}',"
                " ST_GeomFromText(:wkt, 4326), :now, :now)"
            ),
            {"id": entity_id, "wkt": wkt, "now": now},
        )


def test_k0003_gives_existing_tenants_the_locations_table_of_new_ones(knowledge_url: str) -> None:
    store = KnowledgeStore.from_url(knowledge_url)
    _write_location(store, "city-old", "urn:a", "POINT(-3.7 40.4)")
    store.close()
    [_, knowledge] = histories([KnowledgeLayer()])
    command.downgrade(_config(knowledge, knowledge_url), "k0002")
    with psycopg2.connect(knowledge_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (f'"{schema_name("city-old")}".entity_locations',))
        assert cursor.fetchone() == (None,)
    connection.close()
    store = KnowledgeStore.from_url(knowledge_url)
    _write_location(store, "city-old", "urn:b", "POLYGON((0 0, 1 0, 1 1, 0 0))")  # no trigger
    store.close()

    assert upgrade(knowledge_url, [KnowledgeLayer()])[-1] == "knowledge: k0002 -> k0004"
    store = KnowledgeStore.from_url(knowledge_url)
    _write_location(store, "city-old", "urn:c", "POINT(2.17 41.4)")  # the trigger again
    _write_location(store, "city-new", "urn:a", "POINT(-3.7 40.4)")
    store.close()
    old_definition, old_rows, old_version = _locations(knowledge_url, "city-old")
    new_definition, new_rows, new_version = _locations(knowledge_url, "city-new")
    assert old_definition == new_definition
    assert len(old_definition) == 6  # primary key, two GiST indexes, three triggers
    assert (old_version, new_version) == (3, 3)
    assert old_rows == [
        ("urn:a", "POINT(-3.7 40.4)", "(-3.7,40.4)"),
        ("urn:b", "POLYGON((0 0,1 0,1 1,0 0))", None),
        ("urn:c", "POINT(2.17 41.4)", "(2.17,41.4)"),
    ]
    assert new_rows == old_rows[:1]


def test_k0004_keeps_the_pending_outbox_rows_and_drops_the_published_ones(
    knowledge_url: str,
) -> None:
    [_, knowledge] = histories([KnowledgeLayer()])
    command.downgrade(_config(knowledge, knowledge_url), "k0003")
    envelope = '{"payload": {"n": %s}}'
    with psycopg2.connect(knowledge_url) as connection, connection.cursor() as cursor:
        for number, sent in ((1, True), (2, False), (3, True), (4, False)):
            cursor.execute(
                "INSERT INTO cityos_knowledge.outbox (id, tenant, topic, key, envelope, sent_at) "
                "VALUES (%s, 't', 'topic', 'k', %s, CASE WHEN %s THEN now() END)",
                (number, envelope % number, sent),
            )
    connection.close()

    assert upgrade(knowledge_url, [KnowledgeLayer()])[-1] == "knowledge: k0003 -> k0004"
    with psycopg2.connect(knowledge_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, envelope FROM cityos_knowledge.outbox ORDER BY id")
        rows = cursor.fetchall()
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'cityos_knowledge' AND table_name = 'outbox'"
        )
        columns = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'outbox'")
        indexes = {row[0] for row in cursor.fetchall()}
    connection.close()
    assert rows == [(2, {"payload": {"n": 2}}), (4, {"payload": {"n": 4}})]
    assert "sent_at" not in columns
    assert indexes == {"outbox_pkey"}


def test_entity_locations_follow_the_geometries_of_attributes(
    knowledge_store: KnowledgeStore,
) -> None:
    schema = knowledge_store.tenants.ensure("city-a")
    located = f'"{schema}".entity_locations'
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        {"entity_id": "urn:a", "name": "location", "kind": "GeoProperty", "body": {}},
        {"entity_id": "urn:a", "name": "speed", "kind": "Property", "body": {}},
        {"entity_id": "urn:b", "name": "area", "kind": "GeoProperty", "body": {}},
    ]
    geometries = {
        "location": '{"type": "Point", "coordinates": [1, 2]}',
        "speed": None,
        "area": '{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}',
    }

    def current() -> list[tuple[str, str, str | None]]:
        found = raw.execute(
            text(
                "SELECT entity_id || '/' || name, ST_AsText(geometry), position::text "
                f"FROM {located}"
            )
        )
        return sorted(tuple(row) for row in found)

    with knowledge_store.engine.begin() as raw:
        bound = bind_schema(raw, schema)
        bound.execute(
            insert(attributes),
            [
                {**row, "geometry": geometries[row["name"]], "created_at": now, "modified_at": now}
                for row in rows
            ],
        )
        assert current() == [
            ("urn:a/location", "POINT(1 2)", "(1,2)"),
            ("urn:b/area", "POLYGON((0 0,1 0,1 1,0 0))", None),
        ]
        bound.execute(attributes.update().values(value_number=4.0))  # no geometry changes
        bound.execute(
            attributes.update()
            .where(attributes.c.name == "location")
            .values(geometry='{"type": "LineString", "coordinates": [[1, 2], [3, 4]]}')
        )
        bound.execute(
            attributes.update().where(attributes.c.name == "area").values(entity_id="urn:c")
        )
        assert current() == [
            ("urn:a/location", "LINESTRING(1 2,3 4)", None),
            ("urn:c/area", "POLYGON((0 0,1 0,1 1,0 0))", None),
        ]
        bound.execute(
            attributes.update().where(attributes.c.name == "location").values(geometry=None)
        )
        bound.execute(attributes.delete().where(attributes.c.entity_id == "urn:c"))
        assert current() == []
