"""The users' roles summary of the ``/admin`` page, read from Keycloak's admin REST API.

Keycloak holds the users (its own, or federated from the city's LDAP/Active Directory) and
their role mappings; cityos only reads them, through ``python-keycloak``, to show who holds
which platform role and which tenants. Roles are the *effective* ones (composite, so roles
given through groups — how LDAP group mappers usually grant them — are included), from the
realm and from the platform's own client (``CITYOS_AUTH_AUDIENCE``).

Calls used, all ``GET`` under ``<server>/admin/realms/<realm>/``: ``users`` (paged),
``clients?clientId=…``, ``users/<id>/role-mappings/realm/composite`` and
``users/<id>/role-mappings/clients/<client>/composite``; the admin token comes from
``<server>/realms/<admin realm>/protocol/openid-connect/token`` (client ``admin-cli``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cityos_support.settings import SupportSettings

#: Realm roles Keycloak gives everyone; not worth showing.
KEYCLOAK_DEFAULT_ROLES = frozenset({"offline_access", "uma_authorization"})


class DirectoryError(RuntimeError):
    """Keycloak could not be asked (unreachable, refused our credentials, answered oddly)."""


class KeycloakUsersApi(Protocol):
    """The part of ``keycloak.KeycloakAdmin`` the summary uses."""

    def get_users(self, query: dict[str, Any] | None = None) -> list[Any]: ...
    def get_client_id(self, client_id: str) -> str | None: ...
    def get_composite_realm_roles_of_user(
        self, user_id: str, brief_representation: bool = True
    ) -> list[Any]: ...
    def get_composite_client_roles_of_user(
        self, user_id: str, client_id: str, brief_representation: bool = False
    ) -> list[Any]: ...


@dataclass(frozen=True)
class UserRoles:
    """One user as the summary shows it."""

    username: str
    enabled: bool
    roles: list[str]
    tenants: list[str]
    #: ``local``, or ``federated`` when the user comes from a directory (LDAP/AD).
    source: str


@dataclass(frozen=True)
class UsersSummary:
    users: list[UserRoles] = field(default_factory=list)
    #: True when the realm has more users than the summary lists.
    truncated: bool = False


class UserDirectory:
    """Reads the users' roles summary from one Keycloak realm."""

    def __init__(
        self,
        connect: Callable[[], KeycloakUsersApi],
        *,
        audience: str = "cityos",
        tenant_attribute: str = "tenants",
        max_users: int = 200,
    ) -> None:
        self._connect = connect
        self._admin: KeycloakUsersApi | None = None
        self._lock = threading.Lock()
        self._audience = audience
        self._tenant_attribute = tenant_attribute
        self._max_users = max_users

    @classmethod
    def from_settings(
        cls, settings: SupportSettings, *, max_users: int = 200
    ) -> UserDirectory | None:
        """A directory when Keycloak admin access is configured, else None."""
        if not settings.keycloak_admin_url or settings.keycloak_admin_password is None:
            return None
        url = settings.keycloak_admin_url
        password = settings.keycloak_admin_password.get_secret_value()

        def connect() -> KeycloakUsersApi:
            from keycloak import KeycloakAdmin

            return KeycloakAdmin(
                server_url=url,
                username=settings.keycloak_admin_username,
                password=password,
                realm_name=settings.keycloak_realm,
                user_realm_name=settings.keycloak_admin_realm,
                timeout=max(1, int(settings.auth_http_timeout_seconds)),
            )

        return cls(
            connect,
            audience=settings.auth_audience,
            tenant_attribute=settings.auth_tenant_claim,
            max_users=max_users,
        )

    def summary(self) -> UsersSummary:
        """Every user (up to ``max_users``) with its platform roles and tenants (blocking)."""
        from keycloak.exceptions import KeycloakError
        from requests import RequestException

        try:
            with self._lock:
                if self._admin is None:
                    self._admin = self._connect()
                admin = self._admin
            return self._summary(admin)
        except (KeycloakError, RequestException, KeyError, TypeError) as exc:
            with self._lock:
                self._admin = None  # log in afresh next time
            raise DirectoryError(f"cannot read users from Keycloak: {exc}") from exc

    def _summary(self, admin: KeycloakUsersApi) -> UsersSummary:
        users = admin.get_users({"first": 0, "max": self._max_users + 1})
        client = admin.get_client_id(self._audience)
        found = []
        for user in users[: self._max_users]:
            roles = {role["name"] for role in admin.get_composite_realm_roles_of_user(user["id"])}
            if client is not None:
                client_roles = admin.get_composite_client_roles_of_user(user["id"], client)
                roles |= {role["name"] for role in client_roles}
            shown = sorted(
                role
                for role in roles
                if role not in KEYCLOAK_DEFAULT_ROLES and not role.startswith("default-roles-")
            )
            attributes = user.get("attributes") or {}
            found.append(
                UserRoles(
                    username=user["username"],
                    enabled=bool(user.get("enabled", True)),
                    roles=shown,
                    tenants=sorted(attributes.get(self._tenant_attribute, [])),
                    source="federated" if user.get("federationLink") else "local",
                )
            )
        return UsersSummary(found, truncated=len(users) > self._max_users)
