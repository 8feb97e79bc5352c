"""deploy/keycloak/ describes a realm the platform can use (no Keycloak server runs here:
`cityos auth bootstrap` itself is exercised only against a real Keycloak)."""

from __future__ import annotations

import json
from pathlib import Path

from cityos_support.security.keycloak_admin import (
    ClientDef,
    client_payload,
    load_realm_config,
    platform_scope,
)
from cityos_support.security.policy import DEFAULT_POLICY, ROLES, PolicyDocument
from cityos_support.settings import SupportSettings

KEYCLOAK = Path(__file__).resolve().parents[2] / "deploy" / "keycloak"


def test_the_realm_declares_every_platform_role_and_matches_the_validator() -> None:
    config = load_realm_config(KEYCLOAK / "realm.json")
    assert {role.name for role in config.roles} == set(ROLES)
    defaults = SupportSettings()
    assert config.audience == defaults.auth_audience
    assert config.tenant_claim == defaults.auth_tenant_claim
    assert config.admin_user is not None and "platform-admin" in config.admin_user.roles


def test_the_platform_scope_puts_audience_and_tenants_into_access_tokens() -> None:
    config = load_realm_config(KEYCLOAK / "realm.json")
    mappers = {m["protocolMapper"]: m["config"] for m in platform_scope(config)["protocolMappers"]}
    assert mappers["oidc-audience-mapper"]["included.client.audience"] == "cityos"
    tenants = mappers["oidc-usermodel-attribute-mapper"]
    assert (tenants["claim.name"], tenants["multivalued"], tenants["access.token.claim"]) == (
        "tenants",
        "true",
        "true",
    )


def test_public_clients_use_pkce_and_apps_are_confidential() -> None:
    browser = client_payload(ClientDef(client_id="cityos-admin", public=True, standard_flow=True))
    assert browser["publicClient"] is True
    assert browser["attributes"]["pkce.code.challenge.method"] == "S256"
    app = client_payload(ClientDef(client_id="parking-app", service_account=True))
    assert app["publicClient"] is False and app["serviceAccountsEnabled"] is True
    assert app["directAccessGrantsEnabled"] is False


def test_the_shipped_policies_file_is_the_built_in_default() -> None:
    shipped = PolicyDocument.model_validate(json.loads((KEYCLOAK / "policies.json").read_text()))
    assert shipped == DEFAULT_POLICY
