"""Token validation against a real loopback issuer (discovery + JWKS over HTTP)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cityos_support.security.tokens import JwksCache, TokenError, TokenValidator
from tests.fixtures.support import AUDIENCE, TENANT_A, LoopbackIssuer


def validator_for(issuer: LoopbackIssuer, **cache: float) -> TokenValidator:
    keys = JwksCache(issuer.url, **cache)  # type: ignore[arg-type]
    return TokenValidator(keys, audience=AUDIENCE, leeway_seconds=5)


def test_a_keycloak_token_yields_subject_roles_and_tenants(oidc_issuer: LoopbackIssuer) -> None:
    token = oidc_issuer.token(roles=("operator",), client_roles=("data-officer",), subject="user-1")
    identity = validator_for(oidc_issuer).validate(token)
    assert identity.subject == "user-1"
    assert identity.client == AUDIENCE
    assert {"operator", "data-officer"} <= identity.roles
    assert identity.tenants == frozenset({TENANT_A})


def test_the_audience_may_be_in_aud_for_a_token_issued_to_another_client(
    oidc_issuer: LoopbackIssuer,
) -> None:
    token = oidc_issuer.token(roles=("app",), azp="parking-app", aud=["account", AUDIENCE])
    assert validator_for(oidc_issuer).validate(token).client == "parking-app"


def test_wildcard_tenant_claim_means_every_tenant(oidc_issuer: LoopbackIssuer) -> None:
    token = oidc_issuer.token(tenants=("*",))
    assert validator_for(oidc_issuer).validate(token).tenants is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (lambda now: {"lifetime": -60}, "expired"),
        (lambda now: {"iss": "http://127.0.0.1:1/realms/other"}, "another issuer"),
        (lambda now: {"azp": "other-client", "aud": "account"}, "not for this platform"),
        # From when the test runs, not when it was collected: the whole suite takes longer
        # than 600 s, and a "not before" fixed at collection had passed by then.
        (lambda now: {"nbf": now + 600}, "not valid yet"),
    ],
    ids=["expired", "another-issuer", "another-client", "not-valid-yet"],
)
def test_unacceptable_claims_are_refused(
    oidc_issuer: LoopbackIssuer, overrides: Callable[[int], dict[str, object]], reason: str
) -> None:
    token = oidc_issuer.token(**overrides(int(time.time())))
    with pytest.raises(TokenError, match=reason):
        validator_for(oidc_issuer).validate(token)


def test_expiry_within_the_leeway_is_accepted(oidc_issuer: LoopbackIssuer) -> None:
    token = oidc_issuer.token(lifetime=-2)
    assert validator_for(oidc_issuer).validate(token).subject


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(
    oidc_issuer: LoopbackIssuer,
) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = oidc_issuer.token(key=forger, roles=("platform-admin",))
    with pytest.raises(TokenError, match="signature"):
        validator_for(oidc_issuer).validate(token)


def test_a_tampered_payload_is_refused(oidc_issuer: LoopbackIssuer) -> None:
    import base64
    import json

    header, payload, signature = oidc_issuer.token(roles=("citizen",)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["realm_access"]["roles"].append("platform-admin")
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="signature"):
        validator_for(oidc_issuer).validate(f"{header}.{forged}.{signature}")


def test_unsigned_and_hmac_tokens_are_refused(oidc_issuer: LoopbackIssuer) -> None:
    import jwt

    claims = oidc_issuer.claims(roles=("platform-admin",))
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": oidc_issuer.current_kid})
    hmac = jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": oidc_issuer.current_kid})
    validator = validator_for(oidc_issuer)
    for token in (unsigned, hmac):
        with pytest.raises(TokenError, match="not accepted"):
            validator.validate(token)


def test_key_rotation_is_picked_up_on_an_unknown_kid(oidc_issuer: LoopbackIssuer) -> None:
    validator = validator_for(oidc_issuer, min_refresh_seconds=0)
    validator.validate(oidc_issuer.token())
    certs_before = oidc_issuer.requests.count("/realms/city/protocol/openid-connect/certs")
    oidc_issuer.rotate()
    assert validator.validate(oidc_issuer.token()).subject
    certs_after = oidc_issuer.requests.count("/realms/city/protocol/openid-connect/certs")
    assert certs_after == certs_before + 1
    # Known keys are served from the cache: no further request.
    validator.validate(oidc_issuer.token())
    assert oidc_issuer.requests.count("/realms/city/protocol/openid-connect/certs") == certs_after


def test_forged_kids_do_not_flood_the_issuer(oidc_issuer: LoopbackIssuer) -> None:
    validator = validator_for(oidc_issuer, min_refresh_seconds=60)
    validator.validate(oidc_issuer.token())
    before = len(oidc_issuer.requests)
    for number in range(5):
        with pytest.raises(TokenError, match="unknown key id"):
            validator.validate(
                oidc_issuer.token(
                    kid=f"forged-{number}", key=oidc_issuer.keys[oidc_issuer.current_kid]
                )
            )
    assert len(oidc_issuer.requests) == before


def test_cached_keys_keep_working_while_the_issuer_is_down(oidc_issuer: LoopbackIssuer) -> None:
    from cityos_support.security.tokens import IssuerUnavailableError

    validator = validator_for(oidc_issuer, ttl_seconds=0.01, min_refresh_seconds=0)
    known = oidc_issuer.token()
    validator.validate(known)
    oidc_issuer.stop()
    time.sleep(0.05)  # the cache is stale now, and the issuer does not answer
    assert validator.validate(oidc_issuer.token()).subject
    oidc_issuer.rotate()
    with pytest.raises(IssuerUnavailableError):
        validator.validate(oidc_issuer.token())  # a new key cannot be fetched


def test_a_cached_token_still_expires(oidc_issuer: LoopbackIssuer) -> None:
    validator = TokenValidator(JwksCache(oidc_issuer.url), audience=AUDIENCE, leeway_seconds=0)
    token = oidc_issuer.token(lifetime=1)
    identity = validator.validate(token)
    assert validator.validate(token) is identity  # the second time, from the cache
    time.sleep(2.1)
    with pytest.raises(TokenError, match="expired"):
        validator.validate(token)
