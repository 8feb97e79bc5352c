"""Tokens from a real, independent OpenID Connect provider (Debian's glewlwyd): discovery,
JWKS and an RS256 client-credentials token that this code did not sign."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from cityos_support.layer import SupportLayer
from cityos_support.security.tokens import JwksCache, TokenValidator
from tests.fixtures.support import Glewlwyd

pytestmark = pytest.mark.slow


def test_a_glewlwyd_client_credentials_token_validates(glewlwyd: Glewlwyd) -> None:
    validator = TokenValidator(JwksCache(glewlwyd.url), audience="cityos")
    identity = validator.validate(glewlwyd.client_credentials_token())
    assert identity.subject == Glewlwyd.CLIENT_ID
    assert identity.roles == frozenset()  # glewlwyd has no Keycloak role claims
    wrong_audience = TokenValidator(JwksCache(glewlwyd.url), audience="another-api")
    with pytest.raises(Exception, match="not for this platform"):
        wrong_audience.validate(glewlwyd.client_credentials_token())


@pytest.fixture
def app_behind_glewlwyd(glewlwyd: Glewlwyd) -> Iterator[TestClient]:
    settings = PlatformSettings(env="development", auth="keycloak", auth_issuer=glewlwyd.url)
    platform = build_platform(settings, [SupportLayer()], bus=MemoryBus())
    with TestClient(create_app(platform, manage_lifecycle=False)) as client:
        yield client


def test_the_platform_authenticates_glewlwyd_tokens_and_then_applies_roles(
    app_behind_glewlwyd: TestClient, glewlwyd: Glewlwyd
) -> None:
    token = glewlwyd.client_credentials_token()
    assert app_behind_glewlwyd.get("/support/monitoring/warnings").status_code == 401
    answer = app_behind_glewlwyd.get(
        "/support/monitoring/warnings", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403  # authenticated, but no role grants monitoring:read
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answer = app_behind_glewlwyd.get(
        "/support/monitoring/warnings", headers={"Authorization": f"Bearer {forged}"}
    )
    assert answer.status_code == 401
