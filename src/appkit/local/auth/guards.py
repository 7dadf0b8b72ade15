"""The auth service's guards: API keys, bearer tokens, the admin role, and rate-limit policy."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appkit.errors import AuthError
from appkit.local.auth.errors import forbidden, too_many, unauthorized
from appkit.local.auth.http import AuthRequest
from appkit.local.auth.inputs import is_uuid
from appkit.local.auth.ratelimit import Limiter
from appkit.local.config import AuthConfig
from appkit.local.keys import JWTKeys

ADMIN_ROLES = ("service_role", "supabase_admin")


#: GoTrue's access-token claims and the JSON types they decode from (null is always allowed)
_STRING_CLAIMS = ("iss", "sub", "jti", "role", "email", "phone", "aal", "session_id", "client_id")
_OBJECT_CLAIMS = ("app_metadata", "user_metadata")


def misshapen_claim(claims: dict[str, Any]) -> str | None:
    """Why GoTrue could not decode these claims into its claims struct, or None when it could."""
    for name in _STRING_CLAIMS:
        value = claims.get(name)
        if value is not None and not isinstance(value, str):
            return f"the {name!r} claim must be a string"
    for name in _OBJECT_CLAIMS:
        value = claims.get(name)
        if value is not None and not isinstance(value, dict):
            return f"the {name!r} claim must be an object"
    anon = claims.get("is_anonymous")
    if anon is not None and not isinstance(anon, bool):
        return "the 'is_anonymous' claim must be a boolean"
    aud = claims.get("aud")
    if aud is not None and not isinstance(aud, str) and not (
            isinstance(aud, list) and all(isinstance(a, str) for a in aud)):
        return "the 'aud' claim must be a string or an array of strings"
    amr = claims.get("amr")
    if amr is not None and not (isinstance(amr, list) and all(isinstance(a, dict) for a in amr)):
        return "the 'amr' claim must be an array of objects"
    return None


class Guards:
    """The checks endpoints run before doing anything: each returns what it checked or raises
    the :class:`~appkit.local.auth.errors.ApiError` GoTrue answers."""

    def __init__(self, cfg: AuthConfig, keys: JWTKeys) -> None:
        self.cfg = cfg
        self.keys = keys
        self.limiter = Limiter()
        self._api_keys = {keys.anon_key, keys.service_role_key}

    def _check_apikey(self, request: Request) -> Response | None:
        key = request.headers.get("apikey") or request.query_params.get("apikey")
        if not key:
            return JSONResponse({"message": "No API key found in request"}, status_code=401)
        if key in self._api_keys:
            return None
        try:
            claims = self.keys.verify(key)
        except AuthError:
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        if claims.get("role") not in ("anon", "service_role", "authenticated"):
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        # not remembered here: keys.verify's cache re-checks the expiry on every use
        return None

    def _bearer(self, req: AuthRequest) -> str:
        header = req.request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("no_authorization", "This endpoint requires a Bearer token")
        return token.strip()

    def _verify_jwt(self, token: str) -> dict[str, Any]:
        """The token's claims (``keys.verify``, which remembers tokens it verified), or 401;
        403 ``bad_jwt`` when a claim has a JSON type GoTrue's claims cannot hold."""
        try:
            claims = self.keys.verify(token)
        except AuthError as exc:
            if isinstance(exc.details, dict) and exc.details.get("claim"):  # a time claim of the wrong JSON type
                raise forbidden("bad_jwt", "invalid JWT: unable to parse or verify signature, token is malformed: "
                                           f"could not JSON decode claim: {exc.details['claim']} must be a number"
                                ) from None
            raise unauthorized("bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc.message}") from None
        wrong = misshapen_claim(claims)
        if wrong is not None:
            raise forbidden("bad_jwt", "invalid JWT: unable to parse or verify signature, token is malformed: "
                                       f"could not JSON decode claim: {wrong}")
        return claims

    def _claims(self, req: AuthRequest) -> dict[str, Any]:
        token = self._bearer(req)
        claims = self._verify_jwt(token)
        aud = claims.get("aud")
        if (aud is not None and aud != "authenticated" and not (isinstance(aud, list) and "authenticated" in aud)
                and claims.get("role") not in ADMIN_ROLES):
                raise unauthorized("bad_jwt", "invalid JWT: unable to parse or verify signature, invalid audience")
        return claims

    def _subject(self, claims: dict[str, Any]) -> tuple[str, str | None]:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise forbidden("bad_jwt", "invalid claim: missing sub claim")
        if not is_uuid(sub):
            raise forbidden("bad_jwt", "invalid claim: sub claim must be a UUID")
        session_id = claims.get("session_id")
        if session_id is not None and not is_uuid(session_id):
            raise forbidden("bad_jwt", "invalid claim: session_id claim must be a UUID")
        return sub, session_id

    def _require_admin(self, req: AuthRequest) -> dict[str, Any]:
        token = self._bearer(req)
        claims = self._verify_jwt(token)
        if claims.get("role") not in ADMIN_ROLES:
            raise forbidden("not_admin", "User not allowed")
        return claims

    def _rate(self, kind: str, key: str, limit: int, window: float, code: str = "over_request_rate_limit",
              msg: str = "Request rate limit reached") -> None:
        if not self.limiter.allow(kind, key, limit, window):
            raise too_many(code, msg, self.limiter.retry_after(kind, key))

    def _ip_limit(self, req: AuthRequest, kind: str) -> None:
        rl = self.cfg.rate_limit
        limit = {"sign_in_sign_ups": rl.sign_in_sign_ups, "token_refresh": rl.token_refresh,
                 "token_verifications": rl.token_verifications, "anonymous_users": rl.anonymous_users}[kind]
        window = 3600.0 if kind == "anonymous_users" else 300.0
        self._rate(kind, req.ip or "-", limit, window)
