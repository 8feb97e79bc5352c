"""Validating Keycloak access tokens locally, against the realm's published keys.

No request goes to Keycloak per API call: the realm's discovery document
(``<issuer>/.well-known/openid-configuration``) names its JWKS, whose public keys are
cached for ``auth_jwks_cache_seconds`` and fetched again when a token names a key id
(``kid``) the cache does not know — which is how a key rotation in Keycloak reaches us —
at most once per ``auth_jwks_min_refresh_seconds``.

Checked on every token: the signature (only asymmetric algorithms), ``iss`` equal to the
configured realm URL, the audience (the platform's client id in ``aud``, or as ``azp``: a
Keycloak access token for a public client often says ``aud: account``), ``exp``/``nbf``/
``iat`` with a small leeway, and a subject. Roles are the realm roles
(``realm_access.roles``) plus the platform client's roles (``resource_access.<client>.roles``);
tenants come from a configurable claim.

Fetching is blocking (httpx) and guarded by a thread lock, so one validator serves every
event loop and thread of a process; the authorizer calls it in a worker thread.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK

logger = logging.getLogger(__name__)


class TokenError(Exception):
    """The bearer token is not acceptable; the message says why (safe to show the caller)."""


class IssuerUnavailableError(Exception):
    """The realm's discovery document or keys cannot be fetched."""


@dataclass(frozen=True)
class Identity:
    """What a valid token says about its bearer."""

    subject: str
    client: str | None
    username: str | None
    roles: frozenset[str]
    tenants: frozenset[str] | None  # None: every tenant ("*" in the claim)
    claims: Mapping[str, Any]


class JwksCache:
    """The realm's signing keys by ``kid``, from its discovery document, refreshed on demand."""

    def __init__(
        self,
        issuer: str,
        *,
        ttl_seconds: float = 600.0,
        min_refresh_seconds: float = 10.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._jwks_uri: str | None = None
        self.fetches = 0

    def key_for(self, kid: str) -> PyJWK:
        """The public key named ``kid``; refreshes when stale or when ``kid`` is unknown."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            unknown = kid not in self._keys
            may_refresh = self._fetched_at is None or now - self._fetched_at >= self._min_refresh
            if stale or (unknown and may_refresh):
                try:
                    self._refresh(now)
                except IssuerUnavailableError as exc:
                    if kid not in self._keys:
                        raise
                    # Keycloak is unreachable but the key is known: keep serving with it
                    # and try again after the minimum refresh interval.
                    logger.warning("keeping cached keys of %s: %s", self.issuer, exc)
                    self._fetched_at = now - self._ttl + self._min_refresh
            key = self._keys.get(kid)
        if key is None:
            raise TokenError(f"token signed with unknown key id {kid!r}")
        return key

    def _refresh(self, now: float) -> None:
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                if self._jwks_uri is None:
                    discovery = _get_json(client, f"{self.issuer}/.well-known/openid-configuration")
                    if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                        raise IssuerUnavailableError(
                            f"discovery document names issuer {discovery.get('issuer')!r}, "
                            f"expected {self.issuer!r}"
                        )
                    jwks_uri = discovery.get("jwks_uri")
                    if not isinstance(jwks_uri, str):
                        raise IssuerUnavailableError("discovery document has no jwks_uri")
                    self._jwks_uri = jwks_uri
                jwks = _get_json(client, self._jwks_uri)
        except httpx.HTTPError as exc:
            raise IssuerUnavailableError(f"cannot fetch the realm's keys: {exc}") from exc
        keys: dict[str, PyJWK] = {}
        for entry in jwks.get("keys", []):
            if (
                not isinstance(entry, dict)
                or entry.get("use", "sig") != "sig"
                or "kid" not in entry
            ):
                continue
            try:
                keys[str(entry["kid"])] = PyJWK(entry)
            except jwt.exceptions.PyJWTError as exc:
                logger.warning("ignoring unusable JWKS key %s: %s", entry.get("kid"), exc)
        self._keys = keys
        self._fetched_at = now
        self.fetches += 1
        logger.info("fetched %d signing key(s) of %s", len(keys), self.issuer)


def _get_json(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise IssuerUnavailableError(f"{url} did not return a JSON object")
    return body


class TokenValidator:
    """Turns a bearer token into an :class:`Identity`, or raises :class:`TokenError`."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        audience: str,
        leeway_seconds: int = 30,
        algorithms: tuple[str, ...] = ("RS256",),
        tenant_claim: str = "tenants",
        cache_size: int = 10_000,
    ) -> None:
        unsafe = {alg for alg in algorithms if alg.lower() == "none" or alg.startswith("HS")}
        if unsafe:
            raise ValueError(f"refusing symmetric or empty signature algorithms: {unsafe}")
        self._keys = keys
        self._audience = audience
        self._leeway = leeway_seconds
        self._algorithms = list(algorithms)
        self._tenant_claim = tenant_claim
        self._cache_size = cache_size
        self._validated: collections.OrderedDict[bytes, Identity] = collections.OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return self._keys.issuer

    def cached(self, token: str) -> Identity | None:
        """The identity of a token validated before and not expired yet, without I/O."""
        digest = hashlib.sha256(token.encode()).digest()
        with self._cache_lock:
            cached = self._validated.get(digest)
            if cached is None:
                return None
            if float(cached.claims["exp"]) + self._leeway > time.time():
                self._validated.move_to_end(digest)
                return cached
            del self._validated[digest]
            return None

    def validate(self, token: str) -> Identity:
        """The identity of a valid token; a token seen before is not verified again until
        it expires (clients reuse a token for minutes; parsing and verifying costs ~0.5 ms)."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        digest = hashlib.sha256(token.encode()).digest()
        identity = self._validate(token)
        with self._cache_lock:
            self._validated[digest] = identity
            while len(self._validated) > self._cache_size:
                self._validated.popitem(last=False)
        return identity

    def _validate(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.exceptions.DecodeError as exc:
            raise TokenError(f"malformed token: {exc}") from exc
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise TokenError(f"signature algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenError("token header has no key id (kid)")
        key = self._keys.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                issuer=self._keys.issuer,
                leeway=self._leeway,
                options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
            )
        except jwt.exceptions.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.exceptions.ImmatureSignatureError as exc:
            raise TokenError("token not valid yet") from exc
        except jwt.exceptions.InvalidIssuerError as exc:
            raise TokenError("token issued by another issuer") from exc
        except jwt.exceptions.InvalidSignatureError as exc:
            raise TokenError("token signature does not verify") from exc
        except jwt.exceptions.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        self._check_audience(claims)
        return self._identity(claims)

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        audience = claims.get("aud")
        audiences = {audience} if isinstance(audience, str) else set(audience or [])
        if self._audience not in audiences and claims.get("azp") != self._audience:
            raise TokenError(f"token is not for this platform (audience {self._audience!r})")

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        roles: set[str] = set(_string_list(_get(claims, "realm_access", "roles")))
        roles.update(_string_list(_get(claims, "resource_access", self._audience, "roles")))
        tenants_claim = _string_list(claims.get(self._tenant_claim))
        tenants = None if "*" in tenants_claim else frozenset(tenants_claim)
        client = claims.get("azp")
        username = claims.get("preferred_username")
        return Identity(
            subject=str(claims["sub"]),
            client=client if isinstance(client, str) else None,
            username=username if isinstance(username, str) else None,
            roles=frozenset(roles),
            tenants=tenants,
            claims=dict(claims),
        )


def _get(claims: Mapping[str, Any], *path: str) -> Any:
    value: Any = claims
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []
