"""The users' roles summary read with python-keycloak from a loopback Keycloak stand-in,
directly and through ``/admin/api/users``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from cityos_support.layer import SupportLayer
from cityos_support.security.directory import DirectoryError, UserDirectory
from cityos_support.settings import SupportSettings
from tests.fixtures.support import LoopbackIssuer
from tests.support.keycloak_standin import KeycloakStandIn, StandInUser


@pytest.fixture
def keycloak() -> Iterator[KeycloakStandIn]:
    standin = KeycloakStandIn()
    standin.users = [
        StandInUser(
            "ana",
            ["platform-admin", "offline_access", "default-roles-cityos"],
            tenants=["*"],
        ),
        StandInUser("luis", ["operator"], client_roles=["data-officer"], tenants=["citya"]),
        StandInUser("directory-user", ["manager"], tenants=["cityb"], federated=True),
    ]
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


def settings_for(keycloak: KeycloakStandIn, password: str = "admin-secret") -> SupportSettings:
    return SupportSettings(
        keycloak_admin_url=keycloak.url,
        keycloak_admin_password=SecretStr(password),
        keycloak_realm="cityos",
    )


def test_the_summary_lists_each_users_platform_roles_and_tenants(
    keycloak: KeycloakStandIn,
) -> None:
    directory = UserDirectory.from_settings(settings_for(keycloak))
    assert directory is not None
    summary = directory.summary()
    assert not summary.truncated
    assert [(u.username, u.roles, u.tenants, u.source) for u in summary.users] == [
        ("ana", ["platform-admin"], ["*"], "local"),
        ("luis", ["data-officer", "operator"], ["citya"], "local"),
        ("directory-user", ["manager"], ["cityb"], "federated"),
    ]
    assert "POST /realms/master/protocol/openid-connect/token" in keycloak.requests
    assert "GET /admin/realms/cityos/clients" in keycloak.requests


def test_a_long_user_list_is_cut_and_says_so(keycloak: KeycloakStandIn) -> None:
    keycloak.users += [StandInUser(f"user-{n:02}", ["citizen"]) for n in range(5)]
    directory = UserDirectory.from_settings(settings_for(keycloak), max_users=4)
    assert directory is not None
    summary = directory.summary()
    assert summary.truncated and len(summary.users) == 4


def test_refused_credentials_are_a_directory_error(keycloak: KeycloakStandIn) -> None:
    directory = UserDirectory.from_settings(settings_for(keycloak, password="wrong"))
    assert directory is not None
    with pytest.raises(DirectoryError, match="cannot read users"):
        directory.summary()


def test_no_admin_settings_means_no_directory() -> None:
    assert UserDirectory.from_settings(SupportSettings()) is None


def admin_app(
    oidc_issuer: LoopbackIssuer, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> TestClient:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = PlatformSettings(env="production", auth="keycloak", auth_issuer=oidc_issuer.url)
    return TestClient(create_app(build_platform(settings, [SupportLayer()], bus=MemoryBus())))


def test_the_admin_api_serves_the_summary_to_platform_administrators_only(
    keycloak: KeycloakStandIn, oidc_issuer: LoopbackIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "CITYOS_KEYCLOAK_ADMIN_URL": keycloak.url,
        "CITYOS_KEYCLOAK_ADMIN_PASSWORD": keycloak.admin_password,
    }
    with admin_app(oidc_issuer, monkeypatch, env) as client:
        admin = {"Authorization": f"Bearer {oidc_issuer.token(roles=('platform-admin',))}"}
        answer = client.get("/admin/api/users", headers=admin)
        assert answer.status_code == 200, answer.text
        assert answer.json()["users"][2] == {
            "username": "directory-user",
            "enabled": True,
            "roles": ["manager"],
            "tenants": ["cityb"],
            "source": "federated",
        }
        officer = {"Authorization": f"Bearer {oidc_issuer.token(roles=('data-officer',))}"}
        assert client.get("/admin/api/users", headers=officer).status_code == 403


def test_the_admin_api_says_why_it_has_no_summary(
    keycloak: KeycloakStandIn, oidc_issuer: LoopbackIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = {"Authorization": f"Bearer {oidc_issuer.token(roles=('platform-admin',))}"}
    with admin_app(oidc_issuer, monkeypatch, {}) as client:
        missing = client.get("/admin/api/users", headers=admin)
    assert missing.status_code == 503
    assert "CITYOS_KEYCLOAK_ADMIN_URL" in missing.json()["detail"]
    wrong = {
        "CITYOS_KEYCLOAK_ADMIN_URL": keycloak.url,
        "CITYOS_KEYCLOAK_ADMIN_PASSWORD": "not-the-password",
    }
    with admin_app(oidc_issuer, monkeypatch, wrong) as client:
        refused = client.get("/admin/api/users", headers=admin)
    assert refused.status_code == 502
    assert "cannot read users" in refused.json()["detail"]
