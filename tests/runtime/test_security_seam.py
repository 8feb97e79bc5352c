"""The route permission seam: off allows, keycloak (no validation yet) refuses, public is open."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos_kernel.bus import MemoryBus
from cityos_kernel.errors import ConfigurationError
from cityos_kernel.settings import PlatformSettings
from tests.runtime.layers_for_tests import ExampleLayer


def client_for(**overrides: object) -> TestClient:
    platform = build_platform(
        PlatformSettings(**overrides),  # type: ignore[arg-type]
        [ExampleLayer()],
        bus=MemoryBus(),
    )
    return TestClient(create_app(platform, manage_lifecycle=False))


def test_auth_off_allows_protected_routes() -> None:
    client = client_for(env="development", auth="off")
    assert client.get("/example/things").status_code == 200


def test_keycloak_mode_refuses_protected_routes_and_keeps_public_ones() -> None:
    client = client_for(
        env="production", auth="keycloak", auth_issuer="https://id.example/realms/c"
    )
    refused = client.get("/example/things")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.get("/example/open").status_code == 200
    assert client.get("/health").status_code == 200


def test_auth_off_is_refused_in_production() -> None:
    with pytest.raises(ConfigurationError, match="CITYOS_AUTH=off is refused"):
        client_for(env="production", auth="off")


def test_keycloak_without_issuer_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="CITYOS_AUTH_ISSUER"):
        client_for(env="development", auth="keycloak")


def test_an_app_without_authorizer_fails_closed() -> None:
    client = client_for(env="development", auth="off")
    del client.app.state.authorizer  # type: ignore[attr-defined]
    assert client.get("/example/things").status_code == 503
