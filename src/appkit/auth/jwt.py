"""Server-side verification of Supabase access tokens.

``verify_token`` picks the key (HS256 with the project's JWT secret, or an asymmetric key
from the project's JWKS chosen by ``kid``; an HS256 token is never checked against a public
key, so no algorithm confusion) and leaves the checks to :mod:`appkit._jwt`, the core the
local stack uses too: the algorithm allow-list (``alg: none`` rejected before the signature
is looked at), the signature, ``exp`` (required), ``nbf``, ``iat`` and the audience.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt

from appkit._jwt import ASYMMETRIC_ALGS, decode_claims, token_alg, token_error, token_header


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    user_id: uuid.UUID | None
    role: str
    email: str | None
    phone: str | None
    aal: str | None
    session_id: str | None
    is_anonymous: bool
    expires_at: int
    claims: dict[str, Any] = field(repr=False)

    @property
    def is_authenticated(self) -> bool:
        return self.role == "authenticated" and self.user_id is not None


class UnknownKey(Exception):
    """The token's ``kid`` is not in the JWKS we hold (the caller may refetch once)."""


def verify_token(
    token: str,
    *,
    secret: str | None,
    jwks: Mapping[str, Any] | None,
    audience: str | None,
    leeway: float = 0.0,
    signature_checked_elsewhere: bool = False,
) -> Principal:
    """Verify ``token`` and return its principal; raise ``errors.AuthError`` (code ``bad_jwt``,
    ``expired_jwt`` or ``unexpected_audience``, see :mod:`appkit._jwt`) or ``UnknownKey``."""
    header = token_header(token)
    alg = token_alg(header)
    key: Any
    if signature_checked_elsewhere:
        # the auth server has just accepted this token (no local key for it): check the claims
        key = None
    elif alg == "HS256":
        if not secret:
            raise token_error("HS256 token but no JWT secret is configured")
        key = secret
    else:
        key = _jwk_for(header.get("kid"), alg, jwks)
    claims = decode_claims(token, key, alg, audience=audience, leeway=leeway,
                           verify_signature=not signature_checked_elsewhere)
    return principal_from_claims(claims)


def _jwk_for(kid: Any, alg: str, jwks: Mapping[str, Any] | None) -> Any:
    keys = (jwks or {}).get("keys") or []
    for entry in keys:
        if not isinstance(entry, Mapping):
            continue
        if kid is not None and entry.get("kid") != kid:
            continue
        if kid is None and len(keys) != 1:
            continue
        if entry.get("kty") == "oct":
            continue  # symmetric keys are never taken from a JWKS
        if entry.get("alg") not in (None, alg):
            raise token_error("token algorithm does not match its key")
        try:
            return pyjwt.PyJWK(dict(entry), algorithm=alg).key
        except pyjwt.PyJWTError:
            raise token_error("the JWKS key for this token is unusable") from None
    raise UnknownKey(str(kid))


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    sub = claims.get("sub")
    user_id: uuid.UUID | None = None
    if isinstance(sub, str) and sub:
        try:
            user_id = uuid.UUID(sub)
        except ValueError:
            user_id = None
    exp = claims.get("exp")
    return Principal(
        user_id=user_id,
        role=str(claims.get("role") or "anon"),
        email=claims.get("email") or None,
        phone=claims.get("phone") or None,
        aal=claims.get("aal"),
        session_id=claims.get("session_id"),
        is_anonymous=bool(claims.get("is_anonymous", False)),
        expires_at=int(exp) if isinstance(exp, (int, float)) else int(time.time()),
        claims=dict(claims),
    )


class JWKSCache:
    """The project's JWKS with a TTL; refetch on an unknown ``kid`` at most every ``min_interval``."""

    def __init__(self, ttl: float = 600.0, min_interval: float = 10.0) -> None:
        self.ttl = ttl
        self.min_interval = min_interval
        self.keys: dict[str, Any] | None = None
        self.fetched_at: float | None = None
        self.forced_at: float | None = None

    def fresh(self) -> bool:
        return self.keys is not None and self.fetched_at is not None and time.monotonic() - self.fetched_at < self.ttl

    def may_refetch(self) -> bool:
        """Whether an unknown ``kid`` may trigger a refetch now (at most one per ``min_interval``)."""
        now = time.monotonic()
        if self.forced_at is not None and now - self.forced_at < self.min_interval:
            return False
        self.forced_at = now
        return True

    def store(self, keys: dict[str, Any]) -> None:
        self.keys = keys
        self.fetched_at = time.monotonic()


__all__ = [
    "ASYMMETRIC_ALGS", "JWKSCache", "Principal", "UnknownKey", "principal_from_claims", "token_header", "verify_token",
]
