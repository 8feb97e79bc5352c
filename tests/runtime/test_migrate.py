"""`cityos db upgrade` on a real PostgreSQL+PostGIS."""

from __future__ import annotations

import psycopg2
import pytest

from cityos.migrate import current_revision, histories, upgrade
from tests.runtime.layers_for_tests import ExampleLayer


@pytest.mark.postgres
def test_upgrade_applies_each_history_with_its_own_version_table(database_url: str) -> None:
    layer = ExampleLayer()
    report = upgrade(database_url, [layer])
    assert report == ["platform: empty -> 0001", "example: empty -> ex0001"]
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT version_num FROM alembic_version_platform")
        assert cursor.fetchall() == [("0001",)]
        cursor.execute("SELECT version_num FROM alembic_version_example")
        assert cursor.fetchall() == [("ex0001",)]
        cursor.execute(
            "INSERT INTO example_things VALUES ('a', ST_SetSRID(ST_MakePoint(2.17, 41.38), 4326))"
        )
        cursor.execute("SELECT ST_X(location) FROM example_things")
        assert cursor.fetchone() == (pytest.approx(2.17),)
    connection.close()
    [platform_history, example_history] = histories([layer])
    assert current_revision(example_history, database_url) == "ex0001"
    assert current_revision(platform_history, database_url) == "0001"


@pytest.mark.postgres
def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url, [ExampleLayer()])
    assert upgrade(database_url, [ExampleLayer()]) == [
        "platform: up to date",
        "example: up to date",
    ]
