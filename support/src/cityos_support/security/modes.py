"""Choosing the authorizer from ``CITYOS_AUTH``."""

from __future__ import annotations

import logging

from cityos_kernel.errors import ConfigurationError
from cityos_kernel.settings import PlatformSettings
from cityos_support.security.dependencies import (
    Authorizer,
    DenyAllAuthorizer,
    DevelopmentAuthorizer,
)

logger = logging.getLogger(__name__)


def authorizer_for(settings: PlatformSettings) -> Authorizer:
    """The authorizer a process must use; refuses ``CITYOS_AUTH=off`` in production."""
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
    # Token validation against the realm's JWKS is the support layer's next step; until it
    # exists, a secure mode must refuse rather than pretend.
    return DenyAllAuthorizer("token validation is not available in this build")
