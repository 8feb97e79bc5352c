"""The three authorization levels folded from roles, and the data scope as SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import ARRAY, Column, MetaData, Table, Text, create_engine, select

from cityos_kernel.database import sqlalchemy_url
from cityos_support.security.policy import DEFAULT_POLICY, PolicyDocument, evaluate

RESTRICTED = PolicyDocument.model_validate(
    {
        "roles": {
            "app": {
                "permissions": ["entities:read"],
                "read_types": ["ParkingSpot", "Person"],
                "attributes": {"Person": ["age"]},
                "elements": {"dashboards": ["parking-*"]},
            },
            "manager": {"permissions": ["rules:*"], "read_types": ["*"]},
        },
        "subjects": {"parking-app": {"permissions": ["subscriptions:write"]}},
    }
)


def test_functionality_level_with_wildcards() -> None:
    grants = evaluate(DEFAULT_POLICY, roles={"operator"}, tenants=None)
    assert grants.allows("devices:provision")
    assert not grants.allows("audit:read")
    assert evaluate(DEFAULT_POLICY, roles={"platform-admin"}, tenants=None).allows("data:purge")
    assert not evaluate(DEFAULT_POLICY, roles=set(), tenants=None).allows("entities:read")


def test_platform_element_level() -> None:
    grants = evaluate(RESTRICTED, roles={"app"}, tenants=frozenset({"t"}))
    assert grants.may_see("dashboards", "parking-occupancy")
    assert not grants.may_see("dashboards", "water-network")
    assert not grants.may_see("datasets", "anything")


def test_data_level_types_attributes_and_subject_grants() -> None:
    app = evaluate(RESTRICTED, roles={"app"}, subjects=["parking-app"], tenants=frozenset({"t"}))
    scope = app.scope
    assert scope.may_read("ParkingSpot") and not scope.may_read("WaterMeter")
    assert not scope.may_write("ParkingSpot")
    assert scope.visible_attributes("Person") == {"age"}
    assert scope.project("Person", {"age": 40, "name": "Ana"}) == {"age": 40}
    assert app.allows("subscriptions:write")  # granted to the client id itself
    assert scope.allows_tenant("t") and not scope.allows_tenant("u")
    # A role that reads every type lifts the attribute restriction of another.
    both = evaluate(RESTRICTED, roles={"app", "manager"}, tenants=None).scope
    assert both.readable_types is None and both.visible_attributes("Person") is None


@pytest.mark.postgres
def test_the_type_filter_runs_in_sql(database_url: str) -> None:
    metadata = MetaData()
    entities = Table("entities", metadata, Column("id", Text), Column("types", ARRAY(Text)))
    engine = create_engine(sqlalchemy_url(database_url))
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            entities.insert(),
            [
                {"id": "p1", "types": ["ParkingSpot"]},
                {"id": "w1", "types": ["WaterMeter"]},
                {"id": "x1", "types": ["Person", "Resident"]},
            ],
        )
    app = evaluate(RESTRICTED, roles={"app"}, tenants=None).scope
    nobody = evaluate(RESTRICTED, roles=set(), tenants=None).scope
    admin = evaluate(DEFAULT_POLICY, roles={"platform-admin"}, tenants=None).scope
    with engine.connect() as connection:

        def ids(scope: object, *, write: bool = False) -> list[str]:
            condition = scope.type_filter(entities.c.types, write=write)  # type: ignore[attr-defined]
            query = select(entities.c.id).where(condition).order_by(entities.c.id)
            return list(connection.execute(query).scalars())

        assert ids(app) == ["p1", "x1"]
        assert ids(app, write=True) == []
        assert ids(nobody) == []
        assert ids(admin) == ["p1", "w1", "x1"]
    engine.dispose()
