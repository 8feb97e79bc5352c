"""CITYOS_AUTH=keycloak on the assembled platform: 401 without a token, 403 with the wrong
role or tenant, the route's answer with the right one; denials become audit events."""

from __future__ import annotations

import re
from collections.abc import Iterator

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.layers import load_layers
from cityos_kernel.bus import MemoryBus
from cityos_kernel.events.topics import AUDIT
from cityos_kernel.layer import Layer, LayerContext, LayerParts, MigrationSpec
from cityos_kernel.settings import PlatformSettings
from cityos_support.security import PUBLIC
from cityos_support.security.dependencies import Principal, require
from tests.architecture.test_routes_declare_permissions import route_permissions
from tests.fixtures.support import TENANT_A, TENANT_B, LoopbackIssuer

OPEN_PATHS = {"/health", "/ready", "/metrics"}
#: Every route open to anyone, and why; a new public route must be added here on purpose.
PUBLIC_ROUTES = {
    ("GET", "/health"): "liveness",
    ("GET", "/ready"): "readiness",
    ("GET", "/metrics"): "Prometheus scraping (route templates only, no data)",
    ("GET", "/admin"): "the admin page's static shell; its API needs a token (ADR 0034)",
    ("GET", "/iot/about"): "IoT Agent version, as IoT Agents publish it",
    ("POST", "/iot/json"): "device southbound, authenticated by API key (ADR 0021)",
    ("GET", "/iot/d"): "device southbound, authenticated by API key (ADR 0021)",
    ("POST", "/iot/d"): "device southbound, authenticated by API key (ADR 0021)",
}
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


class ProbeLayer:
    """A layer route that reports what the authorizer let through."""

    name = "probe"

    def migrations(self) -> list[MigrationSpec]:
        return []

    def build(self, context: LayerContext) -> LayerParts:
        router = APIRouter(prefix="/probe")

        @router.get("/entities")
        async def entities(
            principal: Principal = Depends(require("entities:read")),  # noqa: B008
        ) -> dict[str, object]:
            """What the caller may see."""
            scope = principal.scope
            return {
                "subject": principal.subject,
                "tenant": principal.tenant,
                "readable": None if scope.readable_types is None else sorted(scope.readable_types),
            }

        @router.post("/entities")
        async def create_entity(
            principal: Principal = Depends(require("entities:write")),  # noqa: B008
        ) -> dict[str, str]:
            """A write that succeeds."""
            return {"created": "yes"}

        @router.delete("/entities")
        async def delete_entities(
            principal: Principal = Depends(require("entities:write")),  # noqa: B008
        ) -> None:
            """A write that fails."""
            raise HTTPException(409, "busy")

        return LayerParts(routers=[router])


@pytest.fixture
def platform_app(oidc_issuer: LoopbackIssuer) -> Iterator[tuple[TestClient, MemoryBus]]:
    bus = MemoryBus()
    settings = PlatformSettings(env="production", auth="keycloak", auth_issuer=oidc_issuer.url)
    layers: list[Layer] = [*load_layers(), ProbeLayer()]
    platform = build_platform(settings, layers, bus=bus)
    with TestClient(create_app(platform, manage_lifecycle=False)) as client:
        yield client, bus


def concrete_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def mounted_routes(app: FastAPI) -> list[tuple[str, set[str], APIRoute]]:
    """(path as served, methods, route) of every API route, prefixes included."""
    found = []
    for context in fastapi.routing.iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path is not None:
            found.append((context.path, set(context.methods or ()), route))
    return found


def protected_routes(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for path, methods, route in mounted_routes(client.app):  # type: ignore[arg-type]
        if path in FRAMEWORK_ROUTES or PUBLIC in route_permissions(route):
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            found.append((method, concrete_path(path)))
    return found


def test_every_protected_route_answers_401_without_a_token_and_403_with_no_role(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, _ = platform_app
    routes = protected_routes(client)
    assert ("GET", "/probe/entities") in routes
    assert ("PUT", "/admin/api/config/x") in routes
    assert ("GET", "/support/audit/records") in routes
    assert ("GET", "/ngsi-ld/v1/entities") in routes
    assert ("PATCH", "/ngsi-ld/v1/entities/x/attrs/x") in routes
    assert ("POST", "/iot/devices") in routes
    roleless = {"Authorization": f"Bearer {oidc_issuer.token(roles=())}"}
    # A citizen's token is valid and has a role, but only for public open data.
    citizen = {"Authorization": f"Bearer {oidc_issuer.token(roles=('citizen',))}"}
    for method, path in routes:
        anonymous = client.request(method, path)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        refused = client.request(method, path, headers=roleless)
        assert refused.status_code == 403, (method, path, refused.text)
        wrong_role = client.request(method, path, headers=citizen)
        assert wrong_role.status_code == 403, (method, path, wrong_role.text)


def test_only_liveness_readiness_metrics_and_declared_public_reads_are_open(
    platform_app: tuple[TestClient, MemoryBus],
) -> None:
    client, _ = platform_app
    public_routes = {
        (method, path)
        for path, methods, route in mounted_routes(client.app)  # type: ignore[arg-type]
        if PUBLIC in route_permissions(route)
        for method in methods - {"HEAD", "OPTIONS"}
    }
    assert public_routes == set(PUBLIC_ROUTES)
    open_routes = {path for _, path in public_routes}
    assert open_routes >= OPEN_PATHS
    for path in OPEN_PATHS - {"/ready"}:
        assert client.get(path).status_code == 200


def test_the_right_role_passes_and_sees_its_data_scope(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, _ = platform_app
    token = oidc_issuer.token(roles=("manager",), subject="manager-1")
    response = client.get(
        "/probe/entities",
        headers={"Authorization": f"Bearer {token}", "NGSILD-Tenant": TENANT_A},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "manager-1", "tenant": TENANT_A, "readable": None}


def test_another_tenants_data_is_refused(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, _ = platform_app
    token = oidc_issuer.token(roles=("manager",), tenants=(TENANT_A,))
    headers = {"Authorization": f"Bearer {token}", "NGSILD-Tenant": TENANT_B}
    response = client.get("/probe/entities", headers=headers)
    assert response.status_code == 403
    assert TENANT_B in response.json()["detail"]


def test_a_platform_admin_reaches_every_tenant(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, _ = platform_app
    token = oidc_issuer.token(roles=("platform-admin",), tenants=())
    headers = {"Authorization": f"Bearer {token}", "NGSILD-Tenant": TENANT_B}
    assert client.get("/probe/entities", headers=headers).status_code == 200


def test_client_roles_count_like_realm_roles(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, _ = platform_app
    token = oidc_issuer.token(client_roles=("app",), azp="parking-app", aud=["cityos"])
    headers = {"Authorization": f"Bearer {token}", "NGSILD-Tenant": TENANT_A}
    assert client.get("/probe/entities", headers=headers).status_code == 200


def test_an_expired_token_is_401_with_an_invalid_token_challenge(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, _ = platform_app
    token = oidc_issuer.token(roles=("platform-admin",), lifetime=-3600)
    response = client.get("/probe/entities", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_denials_are_audit_events(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, bus = platform_app
    subscription = bus.subscribe("audit-reader", [AUDIT.name])
    token = oidc_issuer.token(roles=("citizen",), subject="citizen-7")
    headers = {"Authorization": f"Bearer {token}", "NGSILD-Tenant": TENANT_A}
    assert client.get("/probe/entities", headers=headers).status_code == 403
    events = [AUDIT.decode(d.value) for d in subscription.poll(timeout=1.0)]
    denied = [e for e in events if e.payload.subject == "citizen-7"]
    assert len(denied) == 1
    event = denied[0]
    assert event.payload.outcome == "denied"
    assert event.payload.action == "entities:read"
    assert event.payload.target == "GET /probe/entities"
    assert event.tenant == TENANT_A


def test_every_write_let_through_is_an_audit_event(
    platform_app: tuple[TestClient, MemoryBus], oidc_issuer: LoopbackIssuer
) -> None:
    client, bus = platform_app
    subscription = bus.subscribe("audit-writes", [AUDIT.name])
    token = oidc_issuer.token(roles=("app",), subject="app-1", azp="parking-app", aud=["cityos"])
    headers = {
        "Authorization": f"Bearer {token}",
        "NGSILD-Tenant": TENANT_A,
        "X-Correlation-Id": "corr-42",
    }
    assert client.get("/probe/entities", headers=headers).status_code == 200
    assert client.post("/probe/entities", headers=headers).status_code == 200
    assert client.delete("/probe/entities", headers=headers).status_code == 409
    events = [AUDIT.decode(d.value) for d in subscription.poll(timeout=1.0)]
    mine = [e for e in events if e.payload.subject == "app-1"]
    assert [(e.payload.target, e.payload.outcome) for e in mine] == [
        ("POST /probe/entities", "success"),
        ("DELETE /probe/entities", "failure"),
    ]  # reads are not audited
    assert all(e.payload.client == "parking-app" for e in mine)
    assert all(e.correlation_id == "corr-42" and e.tenant == TENANT_A for e in mine)
