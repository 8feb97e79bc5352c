"""The three authorization levels folded from roles (the data scope in SQL:
``tests/knowledge/test_data_access.py``)."""

from __future__ import annotations

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
    assert app.allows("subscriptions:write")  # granted to the client id itself
    assert scope.allows_tenant("t") and not scope.allows_tenant("u")
    # A role that reads every type lifts the attribute restriction of another.
    both = evaluate(RESTRICTED, roles={"app", "manager"}, tenants=None).scope
    assert both.readable_types is None and both.visible_attributes("Person") is None
