"""The one JWT verification core: the SDK (``appkit.auth.jwt``) and the local stack
(``appkit.local.keys``) both check tokens here, with one algorithm allow-list and one set
of error codes.

Only PyJWT and :mod:`appkit.errors` are imported, so the local stack can use it without
loading the SDK. Every failure is an :class:`appkit.errors.AuthError` (status 401) whose
``code`` is GoTrue's where GoTrue has one:

- ``bad_jwt``: malformed, tampered, unsigned (``alg: none``), an algorithm outside the
  allow-list, an unknown key, a missing required claim, ``nbf`` / ``iat`` in the future;
- ``unexpected_audience``: ``aud`` missing or not the expected one;
- ``expired_jwt``: ``exp`` has passed (GoTrue answers ``bad_jwt`` on the wire, which the
  local auth service does; callers here need to tell expiry apart, as PostgREST's
  ``PGRST303``, Storage's ``jwt expired`` and Realtime's ``Token has expired`` do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import jwt

from appkit.errors import AuthError

ASYMMETRIC_ALGS: Final = ("RS256", "ES256", "EdDSA")
#: every algorithm a token may be signed with; ``none`` and anything else is rejected first
ALLOWED_ALGS: Final = ("HS256", *ASYMMETRIC_ALGS)

BAD_JWT: Final = "bad_jwt"
EXPIRED_JWT: Final = "expired_jwt"
UNEXPECTED_AUDIENCE: Final = "unexpected_audience"


def token_error(message: str, code: str = BAD_JWT) -> AuthError:
    return AuthError(message, code=code, status=401)


def token_header(token: str) -> dict[str, Any]:
    """The token's unverified header, or ``bad_jwt`` for anything that is not a compact JWS."""
    if not isinstance(token, str):
        raise token_error("invalid JWT: not a string")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise token_error(f"invalid JWT: {exc}") from None


def token_alg(header: Mapping[str, Any]) -> str:
    """The header's ``alg`` if it is on the allow-list, else ``bad_jwt``."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise token_error(f"invalid JWT: algorithm {alg!r} is not allowed")
    return alg


#: the registered time claims; each must be a JSON number when present (RFC 7519 NumericDate)
TIME_CLAIMS: Final = ("exp", "nbf", "iat")


def claim_error(claim: str) -> AuthError:
    """A time claim that is not a JSON number: ``bad_jwt``, with ``details={"claim": name}``
    so PostgREST's answer (``PGRST303``, "The JWT 'exp' claim must be a number") can be given."""
    return AuthError(f"invalid JWT: The JWT '{claim}' claim must be a number", code=BAD_JWT, status=401,
                     details={"claim": claim})


def decode_claims(
    token: str,
    key: Any,
    alg: str,
    *,
    audience: str | list[str] | None = None,
    leeway: float = 0.0,
    verify_signature: bool = True,
    require_exp: bool = True,
) -> dict[str, Any]:
    """Check the signature (unless another party already did), ``exp``, ``nbf``, ``iat`` and,
    when ``audience`` is given, ``aud``; return the claims.

    ``exp`` is required unless ``require_exp`` is False (GoTrue and PostgREST accept a token
    without one, as service-role tokens minted by tools often are). ``exp``/``nbf``/``iat``
    must be JSON numbers when present: a numeric string such as ``"1999999999"`` is refused,
    as GoTrue and PostgREST refuse it (PyJWT alone would accept it).
    """
    options: Any = {
        "require": ["exp"] if require_exp else [], "verify_signature": verify_signature, "verify_exp": False,
        "verify_nbf": False, "verify_iat": False, "verify_aud": False,
    }
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg], options=options)
    except jwt.MissingRequiredClaimError as exc:
        raise token_error(f"invalid JWT: {exc}") from None
    except jwt.PyJWTError as exc:
        raise token_error(f"invalid JWT: {exc}") from None
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise claim_error(name)
    # the signature is checked; now the time and audience rules, in PyJWT's order
    checks: Any = {
        "verify_signature": False, "verify_exp": True, "verify_nbf": True, "verify_iat": True,
        "verify_aud": audience is not None,
    }
    try:
        jwt.decode(token, options=checks, audience=audience, leeway=leeway)
    except jwt.ExpiredSignatureError:
        raise token_error("JWT expired", EXPIRED_JWT) from None
    except jwt.InvalidAudienceError as exc:
        raise token_error(f"invalid JWT: {exc}", UNEXPECTED_AUDIENCE) from None
    except jwt.MissingRequiredClaimError as exc:
        code = UNEXPECTED_AUDIENCE if exc.claim == "aud" else BAD_JWT
        raise token_error(f"invalid JWT: {exc}", code) from None
    except jwt.PyJWTError as exc:
        raise token_error(f"invalid JWT: {exc}") from None
    return claims
