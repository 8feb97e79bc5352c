"""Keycloak administration for ``cityos auth bootstrap`` and ``cityos auth client create``.

The realm's shape is declared in ``deploy/keycloak/realm.json`` (our own short format, not a
full Keycloak export): its roles, the platform's clients, the tenants claim and a first
administrator. :class:`RealmProvisioner` turns it into idempotent calls of Keycloak's admin
REST API through ``python-keycloak``: running it twice changes nothing the second time.

Every token the platform accepts must name the platform (``aud: cityos``) and carry the
subject's tenants; both are protocol mappers on a client scope (``cityos``) that every client
of the realm gets by default.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from cityos_support.security.policy import ROLES

PLATFORM_SCOPE = "cityos"


class RoleDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""


class ClientDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: str
    description: str = ""
    public: bool = False
    service_account: bool = False
    standard_flow: bool = False
    redirect_uris: list[str] = Field(default_factory=list)
    web_origins: list[str] = Field(default_factory=list)


class AdminUserDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    email: str | None = None
    roles: list[str] = Field(default_factory=lambda: ["platform-admin"])
    tenants: list[str] = Field(default_factory=lambda: ["*"])


class RealmConfig(BaseModel):
    """What ``deploy/keycloak/realm.json`` declares."""

    model_config = ConfigDict(extra="ignore")
    realm: str = "cityos"
    display_name: str = "cityos"
    audience: str = "cityos"
    tenant_claim: str = "tenants"
    access_token_lifespan_seconds: int = 300
    roles: list[RoleDef] = Field(default_factory=lambda: [RoleDef(name=r) for r in ROLES])
    clients: list[ClientDef] = Field(default_factory=list)
    admin_user: AdminUserDef | None = None


def load_realm_config(path: Path) -> RealmConfig:
    return RealmConfig.model_validate(json.loads(path.read_text("utf-8")))


class KeycloakAdminApi(Protocol):
    """The part of ``keycloak.KeycloakAdmin`` the provisioner uses."""

    def get_realms(self) -> list[Any]: ...
    def create_realm(self, payload: dict[str, Any], skip_exists: bool = False) -> Any: ...
    def update_realm(self, realm_name: str, payload: dict[str, Any]) -> Any: ...
    def change_current_realm(self, realm_name: str) -> None: ...
    def create_realm_role(self, payload: dict[str, Any], skip_exists: bool = False) -> Any: ...
    def get_realm_role(self, role_name: str) -> dict[str, Any]: ...
    def get_client_scopes(self) -> list[Any]: ...
    def create_client_scope(self, payload: dict[str, Any], skip_exists: bool = False) -> Any: ...
    def add_default_default_client_scope(self, scope_id: str) -> Any: ...
    def get_client_id(self, client_id: str) -> str | None: ...
    def create_client(self, payload: dict[str, Any], skip_exists: bool = False) -> Any: ...
    def update_client(self, client_id: str, payload: dict[str, Any]) -> Any: ...
    def get_client_secrets(self, client_id: str) -> dict[str, Any]: ...
    def get_client_service_account_user(self, client_id: str) -> dict[str, Any]: ...
    def assign_realm_roles(self, user_id: str, roles: Any) -> Any: ...
    def create_user(self, payload: dict[str, Any], exist_ok: bool = False) -> Any: ...
    def get_user_id(self, username: str) -> str | None: ...
    def set_user_password(self, user_id: str, password: str, temporary: bool = True) -> Any: ...
    def update_user(self, user_id: str, payload: dict[str, Any]) -> Any: ...


def platform_scope(config: RealmConfig) -> dict[str, Any]:
    """The client scope adding ``aud: <audience>`` and the tenants claim to every token."""
    return {
        "name": PLATFORM_SCOPE,
        "protocol": "openid-connect",
        "attributes": {"include.in.token.scope": "false"},
        "protocolMappers": [
            {
                "name": "cityos-audience",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "config": {
                    "included.client.audience": config.audience,
                    "access.token.claim": "true",
                    "id.token.claim": "false",
                },
            },
            {
                "name": "cityos-tenants",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-usermodel-attribute-mapper",
                "config": {
                    "user.attribute": config.tenant_claim,
                    "claim.name": config.tenant_claim,
                    "multivalued": "true",
                    "jsonType.label": "String",
                    "access.token.claim": "true",
                    "id.token.claim": "false",
                    "userinfo.token.claim": "true",
                },
            },
        ],
    }


def client_payload(client: ClientDef) -> dict[str, Any]:
    return {
        "clientId": client.client_id,
        "description": client.description,
        "protocol": "openid-connect",
        "publicClient": client.public,
        "serviceAccountsEnabled": client.service_account,
        "standardFlowEnabled": client.standard_flow,
        "directAccessGrantsEnabled": False,
        "redirectUris": client.redirect_uris,
        "webOrigins": client.web_origins,
        "attributes": {"pkce.code.challenge.method": "S256"} if client.public else {},
    }


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    secret: str
    roles: list[str]
    tenants: list[str]


class RealmProvisioner:
    """Applies a :class:`RealmConfig` to a Keycloak server, idempotently."""

    def __init__(self, admin: KeycloakAdminApi, config: RealmConfig) -> None:
        self._admin = admin
        self._config = config

    def bootstrap(self, *, admin_password: str | None) -> list[str]:
        """Create or update realm, roles, scope, clients and first administrator."""
        done: list[str] = []
        config = self._config
        realm_payload = {
            "realm": config.realm,
            "displayName": config.display_name,
            "enabled": True,
            "accessTokenLifespan": config.access_token_lifespan_seconds,
            "sslRequired": "external",
            "bruteForceProtected": True,
        }
        existing = {realm.get("realm") for realm in self._admin.get_realms()}
        if config.realm in existing:
            self._admin.update_realm(config.realm, realm_payload)
            done.append(f"realm {config.realm}: updated")
        else:
            self._admin.create_realm(realm_payload, skip_exists=True)
            done.append(f"realm {config.realm}: created")
        self._admin.change_current_realm(config.realm)
        for role in config.roles:
            self._admin.create_realm_role(
                {"name": role.name, "description": role.description}, skip_exists=True
            )
        done.append(f"roles: {', '.join(role.name for role in config.roles)}")
        scope_id = self._ensure_platform_scope()
        self._admin.add_default_default_client_scope(scope_id)
        done.append(f"client scope {PLATFORM_SCOPE}: default for every client")
        for client in config.clients:
            internal = self._admin.get_client_id(client.client_id)
            if internal is None:
                self._admin.create_client(client_payload(client), skip_exists=True)
                done.append(f"client {client.client_id}: created")
            else:
                self._admin.update_client(internal, client_payload(client))
                done.append(f"client {client.client_id}: updated")
        if config.admin_user is not None:
            done.append(self._ensure_admin(config.admin_user, admin_password))
        return done

    def _ensure_platform_scope(self) -> str:
        for scope in self._admin.get_client_scopes():
            if scope.get("name") == PLATFORM_SCOPE:
                return str(scope["id"])
        return str(self._admin.create_client_scope(platform_scope(self._config), skip_exists=True))

    def _ensure_admin(self, user: AdminUserDef, password: str | None) -> str:
        payload = {
            "username": user.username,
            "email": user.email,
            "enabled": True,
            "emailVerified": user.email is not None,
            "attributes": {self._config.tenant_claim: user.tenants},
        }
        user_id = self._admin.get_user_id(user.username)
        if user_id is None:
            user_id = str(self._admin.create_user(payload, exist_ok=True))
            state = "created"
        else:
            self._admin.update_user(user_id, payload)
            state = "updated"
        self._admin.assign_realm_roles(user_id, [self._admin.get_realm_role(r) for r in user.roles])
        if password:
            self._admin.set_user_password(user_id, password, temporary=True)
            state += ", temporary password set"
        return f"administrator {user.username}: {state}"

    def create_client(self, app: str, *, roles: list[str], tenants: list[str]) -> RegisteredClient:
        """Register a vertical application as a confidential client (client credentials)."""
        unknown = sorted(set(roles) - {role.name for role in self._config.roles})
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; the realm defines {ROLES}")
        self._admin.change_current_realm(self._config.realm)
        payload = client_payload(
            ClientDef(
                client_id=app, description=f"vertical application {app}", service_account=True
            )
        )
        payload["secret"] = secrets.token_urlsafe(32)
        internal = self._admin.get_client_id(app)
        if internal is None:
            self._admin.create_client(payload, skip_exists=True)
            internal = self._admin.get_client_id(app)
        else:
            self._admin.update_client(internal, payload)
        if internal is None:
            raise RuntimeError(f"Keycloak did not create client {app}")
        account = self._admin.get_client_service_account_user(internal)
        self._admin.update_user(
            str(account["id"]), {"attributes": {self._config.tenant_claim: tenants}}
        )
        self._admin.assign_realm_roles(
            str(account["id"]), [self._admin.get_realm_role(role) for role in roles]
        )
        secret = self._admin.get_client_secrets(internal).get("value", payload["secret"])
        return RegisteredClient(client_id=app, secret=str(secret), roles=roles, tenants=tenants)
