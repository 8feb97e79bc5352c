"""The security seam every HTTP route goes through (see :mod:`.dependencies`)."""

from __future__ import annotations

from cityos_support.security.dependencies import (
    PUBLIC,
    Authorizer,
    DenyAllAuthorizer,
    DevelopmentAuthorizer,
    Principal,
    data_scope,
    public,
    require,
    required_permission,
)

__all__ = [
    "PUBLIC",
    "Authorizer",
    "DenyAllAuthorizer",
    "DevelopmentAuthorizer",
    "Principal",
    "data_scope",
    "public",
    "require",
    "required_permission",
]
