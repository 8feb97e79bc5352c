"""Settings of the support layer (``CITYOS_*`` environment variables).

The shared names (``CITYOS_AUTH``, ``CITYOS_AUTH_ISSUER``, ``CITYOS_ENV``) live in
:class:`cityos_kernel.settings.PlatformSettings`; this class adds what only security, audit,
monitoring and the configuration repository need. It is read by every process, because
every process validates tokens and emits audit events.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from cityos_kernel.settings import CityosSettings


class SupportSettings(CityosSettings):
    """Security, audit, monitoring and configuration-repository settings."""

    optional_secrets = frozenset({"audit_signing_key", "smtp_password", "keycloak_admin_password"})

    # -- token validation ------------------------------------------------------------
    auth_audience: str = Field(
        default="cityos",
        description="The client id the platform's tokens are for: accepted in `aud` or `azp`, "
        "and the client whose `resource_access` roles count.",
    )
    auth_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat."
    )
    auth_jwks_cache_seconds: int = Field(
        default=600, ge=1, description="How long the realm's signing keys are trusted unchanged."
    )
    auth_jwks_min_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Minimum interval between key refreshes forced by an unknown `kid` "
        "(a flood of forged kids must not turn into a flood of requests to Keycloak).",
    )
    auth_http_timeout_seconds: float = Field(default=5.0, gt=0)
    auth_algorithms: tuple[str, ...] = Field(
        default=("RS256", "RS384", "RS512", "PS256", "ES256"),
        description="Signature algorithms accepted (never `none`, never HMAC).",
    )
    auth_tenant_claim: str = Field(
        default="tenants", description="The token claim listing the subject's tenants."
    )
    auth_policy_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often a process re-reads the authorization policies (and the other "
        "configuration it uses) from the repository: a safety net, since each process "
        "applies a change as soon as it is broadcast on support.config.changed.v1.",
    )

    # -- audit -----------------------------------------------------------------------
    audit_signing_key: SecretStr | None = Field(
        default=None,
        description="Base64 of the 32-byte Ed25519 seed that signs audit checkpoints. "
        "Required in production; development uses a fixed, public key.",
    )
    audit_checkpoint_every: int = Field(
        default=1000, ge=1, description="Sign a checkpoint after this many records per tenant."
    )
    audit_checkpoint_interval_seconds: float = Field(
        default=300.0, gt=0, description="Also sign one this often for tenants that moved."
    )

    # -- monitoring ------------------------------------------------------------------
    monitoring_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often warning rules are evaluated."
    )
    monitoring_disk_paths: tuple[str, ...] = Field(
        default=("/",), description="Filesystems whose usage is an indicator."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for warning e-mails.")
    smtp_port: int = 25
    smtp_from: str = "cityos@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None

    # -- Keycloak administration (cityos auth ...) -----------------------------------
    keycloak_admin_url: str | None = Field(
        default=None, description="Keycloak base URL for `cityos auth` (e.g. https://id.city)."
    )
    keycloak_realm: str = "cityos"
    keycloak_admin_realm: str = "master"
    keycloak_admin_username: str = "admin"
    keycloak_admin_password: SecretStr | None = None
