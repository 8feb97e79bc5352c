"""The configuration repository and the auditors' API on the assembled platform:
real PostgreSQL, CITYOS_AUTH=keycloak against the loopback issuer, consumers running."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.migrate import upgrade
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from cityos_support.layer import SupportLayer
from tests.fixtures.support import TENANT_A, TENANT_B, LoopbackIssuer

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def admin_client(
    database_url: str, oidc_issuer: LoopbackIssuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("CITYOS_AUDIT_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("CITYOS_AUTH_POLICY_REFRESH_SECONDS", "0.2")
    upgrade(database_url, [SupportLayer()])
    settings = PlatformSettings(env="production", auth="keycloak", auth_issuer=oidc_issuer.url)
    platform = build_platform(
        settings, [SupportLayer()], database_url=database_url, bus=MemoryBus()
    )
    with TestClient(create_app(platform)) as client:
        yield client


@pytest.fixture
def as_role(oidc_issuer: LoopbackIssuer) -> Headers:
    def headers(
        *roles: str,
        subject: str = "someone",
        tenants: tuple[str, ...] = (TENANT_A,),
        tenant: str = TENANT_A,
    ) -> dict[str, str]:
        token = oidc_issuer.token(roles=roles, subject=subject, tenants=tenants)
        return {"Authorization": f"Bearer {token}", "NGSILD-Tenant": tenant}

    return headers


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.mark.postgres
def test_known_keys_start_at_their_defaults_and_keep_a_history(
    admin_client: TestClient, as_role: Headers
) -> None:
    admin = as_role("platform-admin", subject="admin-1")
    listed = {
        entry["key"]: entry for entry in admin_client.get("/admin/api/config", headers=admin).json()
    }
    assert listed["retention"]["version"] == 0
    assert listed["retention"]["value"]["history_days"] is None

    first = admin_client.put(
        "/admin/api/config/retention",
        headers=admin,
        json={"value": {"history_days": 365}, "expected_version": 0, "comment": "one year"},
    )
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["value"]["history_days"] == 365
    second = admin_client.put(
        "/admin/api/config/retention", headers=admin, json={"value": {"history_days": 400}}
    )
    assert second.json()["version"] == 2
    history = admin_client.get("/admin/api/config/retention/history", headers=admin).json()
    assert [(h["version"], h["value"]["history_days"], h["changed_by"]) for h in history] == [
        (2, 400, "admin-1"),
        (1, 365, "admin-1"),
    ]


@pytest.mark.postgres
def test_stale_and_invalid_writes_are_refused(admin_client: TestClient, as_role: Headers) -> None:
    admin = as_role("platform-admin")
    body = {"value": {"history_days": 100}, "expected_version": 0}
    assert (
        admin_client.put("/admin/api/config/retention", headers=admin, json=body).status_code == 200
    )
    stale = admin_client.put("/admin/api/config/retention", headers=admin, json=body)
    assert stale.status_code == 409
    assert "version 1" in stale.json()["detail"]
    invalid = admin_client.put(
        "/admin/api/config/retention", headers=admin, json={"value": {"history_days": -1}}
    )
    assert invalid.status_code == 422
    bad_rule = admin_client.put(
        "/admin/api/config/monitoring.warning_rules",
        headers=admin,
        json={"value": {"rules": [{"name": "x", "indicator": "disk_used_ratio"}]}},
    )
    assert bad_rule.status_code == 422


@pytest.mark.postgres
def test_roles_decide_who_may_write_what(admin_client: TestClient, as_role: Headers) -> None:
    officer = as_role("data-officer")
    assert admin_client.get("/admin/api/config", headers=officer).status_code == 200
    retention = admin_client.put(
        "/admin/api/config/retention", headers=officer, json={"value": {"history_days": 9}}
    )
    assert retention.status_code == 403
    policies = admin_client.get("/admin/api/config/security.policies", headers=officer).json()
    assert (
        admin_client.put(
            "/admin/api/policies", headers=officer, json={"value": policies["value"]}
        ).status_code
        == 200
    )
    assert admin_client.get("/admin/api/config", headers=as_role("citizen")).status_code == 403


@pytest.mark.postgres
def test_a_policy_change_applies_without_restart(
    admin_client: TestClient, as_role: Headers
) -> None:
    citizen = as_role("citizen")
    assert admin_client.get("/admin/api/roles", headers=citizen).status_code == 403
    admin = as_role("platform-admin")
    policy = admin_client.get("/admin/api/config/security.policies", headers=admin).json()["value"]
    policy["roles"]["citizen"]["permissions"].append("config:read")
    assert (
        admin_client.put("/admin/api/policies", headers=admin, json={"value": policy}).status_code
        == 200
    )
    assert eventually(
        lambda: admin_client.get("/admin/api/roles", headers=citizen).status_code == 200
    )
    # ... and the broadcast reached this process's live configuration.
    assert eventually(
        lambda: (
            admin_client.get("/admin/api/applied", headers=admin).json()["security.policies"] == 1
        )
    )


@pytest.mark.postgres
def test_auditors_query_writes_and_denials_by_subject_and_time(
    admin_client: TestClient, as_role: Headers
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    admin_client.put(
        "/admin/api/config/retention",
        headers=as_role("platform-admin", subject="admin-7"),
        json={"value": {"history_days": 90}},
    )
    assert (
        admin_client.get(
            "/admin/api/config", headers=as_role("citizen", subject="nosy-1")
        ).status_code
        == 403
    )
    auditor = as_role("data-officer", subject="auditor-1")

    def records(**params: str) -> list[dict[str, object]]:
        response = admin_client.get("/support/audit/records", headers=auditor, params=params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    assert eventually(lambda: len(records(subject="admin-7")) == 1)
    write = records(subject="admin-7")[0]
    assert write["details"]["version"] == 1
    assert (write["action"], write["target"], write["outcome"]) == (
        "config:write",
        "config:retention",
        "success",
    )
    assert eventually(lambda: len(records(subject="nosy-1")) == 1)
    denial = records(subject="nosy-1")[0]
    assert denial["outcome"] == "denied" and denial["action"] == "config:read"
    assert records(subject="admin-7", since=before.isoformat())
    assert records(subject="admin-7", until=before.isoformat()) == []
    # Not an auditor: refused, and the refusal is itself recorded.
    assert admin_client.get("/support/audit/records", headers=as_role("manager")).status_code == 403
    verified = admin_client.get("/support/audit/verify", headers=as_role("platform-admin")).json()
    assert verified["ok"] is True, verified
    assert verified["records"] >= 2


@pytest.mark.postgres
def test_an_auditor_sees_only_the_tenants_of_the_token(
    admin_client: TestClient, as_role: Headers
) -> None:
    admin_client.get(
        "/admin/api/config", headers=as_role("citizen", subject="a-user", tenant=TENANT_A)
    )
    admin_client.get(
        "/admin/api/config",
        headers=as_role("citizen", subject="b-user", tenants=(TENANT_B,), tenant=TENANT_B),
    )
    everything = as_role("platform-admin")
    assert eventually(
        lambda: len(admin_client.get("/support/audit/records", headers=everything).json()) >= 2
    )
    auditor_a = as_role("data-officer", tenants=(TENANT_A,))
    seen = admin_client.get("/support/audit/records", headers=auditor_a).json()
    assert {record["tenant"] for record in seen} == {TENANT_A}
    refused = admin_client.get(
        "/support/audit/records", headers=auditor_a, params={"tenant": TENANT_B}
    )
    assert refused.status_code == 403


@pytest.mark.postgres
def test_metrics_show_the_database_pool(admin_client: TestClient) -> None:
    metrics = admin_client.get("/metrics").text
    assert 'cityos_db_pool_connections{owner="support",state="size"} 5.0' in metrics
    assert 'cityos_db_pool_connections{owner="support",state="checked_out"}' in metrics
