"""Choosing the authorizer from ``CITYOS_AUTH``, and what it runs beside the routes."""

from __future__ import annotations

import logging

from cityos_kernel.bus.port import Bus
from cityos_kernel.database import create_pooled_engine
from cityos_kernel.errors import ConfigurationError
from cityos_kernel.layer import LayerParts
from cityos_kernel.settings import PlatformSettings
from cityos_support.audit.emitter import AuditEmitter
from cityos_support.config.broadcast import config_listener
from cityos_support.config.live import LiveValue
from cityos_support.config.repository import ConfigRepository
from cityos_support.security.authorizer import OidcAuthorizer
from cityos_support.security.dependencies import Authorizer, DevelopmentAuthorizer
from cityos_support.security.policy import DEFAULT_POLICY, POLICY_KEY, PolicyDocument
from cityos_support.security.tokens import JwksCache, TokenValidator
from cityos_support.settings import SupportSettings

logger = logging.getLogger(__name__)


def authorizer_for(
    settings: PlatformSettings,
    *,
    bus: Bus | None = None,
    database_url: str | None = None,
    support_settings: SupportSettings | None = None,
) -> Authorizer:
    """The authorizer a process must use; refuses ``CITYOS_AUTH=off`` in production.

    With ``bus``, denials are audit events; with ``database_url``, the policies come from the
    configuration repository (refreshed without restart), else the built-in defaults apply.
    Nothing is fetched here: the realm's keys are loaded by the first request that needs them.
    """
    if settings.auth == "off":
        if settings.env == "production":
            raise ConfigurationError(
                "CITYOS_AUTH=off is refused with CITYOS_ENV=production; "
                "set CITYOS_AUTH=keycloak and CITYOS_AUTH_ISSUER"
            )
        logger.warning(
            "AUTHENTICATION IS OFF (CITYOS_AUTH=off): every request is allowed. "
            "Development only; never expose this process to a network."
        )
        return DevelopmentAuthorizer()
    if not settings.auth_issuer:
        raise ConfigurationError("CITYOS_AUTH=keycloak needs CITYOS_AUTH_ISSUER (the realm URL)")
    support = support_settings or SupportSettings(env=settings.env)
    keys = JwksCache(
        settings.auth_issuer,
        ttl_seconds=support.auth_jwks_cache_seconds,
        min_refresh_seconds=support.auth_jwks_min_refresh_seconds,
        timeout_seconds=support.auth_http_timeout_seconds,
    )
    validator = TokenValidator(
        keys,
        audience=support.auth_audience,
        leeway_seconds=support.auth_leeway_seconds,
        algorithms=support.auth_algorithms,
        tenant_claim=support.auth_tenant_claim,
    )
    repository = None
    if database_url:
        engine = create_pooled_engine(database_url, pool_size=2, max_overflow=2)
        repository = ConfigRepository(engine)
    policies = LiveValue(
        POLICY_KEY,
        PolicyDocument,
        DEFAULT_POLICY,
        repository=repository,
        refresh_seconds=support.auth_policy_refresh_seconds,
    )
    audit = AuditEmitter(bus, source="security") if bus is not None else None
    return OidcAuthorizer(validator, policies, audit=audit)


def security_parts(authorizer: Authorizer) -> LayerParts:
    """What the security seam runs in every process: a listener on
    ``support.config.changed.v1`` that applies a policy change as soon as it is broadcast.

    The policies are also re-read every ``CITYOS_AUTH_POLICY_REFRESH_SECONDS``, as a safety
    net for a lost broadcast. Nothing to run with ``CITYOS_AUTH=off``.
    """
    policies = getattr(authorizer, "policies", None)
    if not isinstance(policies, LiveValue):
        return LayerParts()
    return LayerParts(consumers=[config_listener({POLICY_KEY: policies}, process="security")])
