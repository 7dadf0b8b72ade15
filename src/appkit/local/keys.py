"""The stack's JWT keys: the project secret (HS256), optional asymmetric signing keys,
and the anon / service_role API keys derived from them exactly as the Supabase CLI does.

Verification is :mod:`appkit._jwt` (shared with the SDK: one allow-list, GoTrue's error
codes) plus the choice of key: the secret for HS256, the signing key named by ``kid``
otherwise (an unknown ``kid`` is ``bad_jwt``).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from appkit._jwt import ASYMMETRIC_ALGS, EXPIRED_JWT, decode_claims, token_alg, token_error, token_header
from appkit.errors import ConfigError

#: The Supabase CLI's demo keys expire at this instant (2032-11-02); we sign the same claims.
DEMO_KEY_EXP = 1983812996


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    jwk: jwt.PyJWK
    public_jwk: dict[str, Any]


#: verified tokens remembered (signature checks cost ~0.3 ms each in PyJWT)
VERIFIED_CACHE_SIZE = 4096


@dataclass
class JWTKeys:
    secret: str
    signing_keys: list[SigningKey] = field(default_factory=list)
    _verified: OrderedDict[tuple[str, str | tuple[str, ...] | None], dict[str, Any]] = field(
        default_factory=OrderedDict, repr=False
    )

    @classmethod
    def load(cls, secret: str, signing_keys_path: Path | None = None) -> JWTKeys:
        keys: list[SigningKey] = []
        if signing_keys_path is not None:
            keys = _load_jwks(signing_keys_path)
        return cls(secret=secret, signing_keys=keys)

    # -- API keys ------------------------------------------------------------
    def _api_key(self, role: str) -> str:
        claims = {"iss": "supabase-demo", "role": role, "exp": DEMO_KEY_EXP}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    @property
    def anon_key(self) -> str:
        return self._api_key("anon")

    @property
    def service_role_key(self) -> str:
        return self._api_key("service_role")

    # -- signing ---------------------------------------------------------------
    def sign(self, claims: dict[str, Any]) -> str:
        """Sign with the first asymmetric key when configured, else HS256 with the secret."""
        if self.signing_keys:
            key = self.signing_keys[0]
            return jwt.encode(claims, key.jwk.key, algorithm=key.alg, headers={"kid": key.kid})
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (``/.well-known/jwks.json``); symmetric secrets are never listed."""
        return {"keys": [k.public_jwk for k in self.signing_keys]}

    # -- verification ------------------------------------------------------------
    def verify(self, token: str, *, audience: str | list[str] | None = None) -> dict[str, Any]:
        """Return the claims of a valid token or raise :class:`AuthError`.

        ``code`` is one of ``bad_jwt`` (malformed, tampered, bad alg, unknown kid),
        ``expired_jwt``, ``unexpected_audience`` (see :mod:`appkit._jwt`).
        A token verified before is answered from a bounded cache; its expiry is checked
        again on every use.
        """
        key_aud = tuple(audience) if isinstance(audience, list) else audience
        cached = self._verified.get((token, key_aud))
        if cached is not None:
            if "exp" in cached and float(cached["exp"]) <= time.time():
                self._verified.pop((token, key_aud), None)
                raise token_error("JWT expired", EXPIRED_JWT)
            self._verified.move_to_end((token, key_aud))
            return dict(cached)
        claims = self._verify(token, audience)
        self._verified[(token, key_aud)] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return dict(claims)

    def _verify(self, token: str, audience: str | list[str] | None) -> dict[str, Any]:
        header = token_header(token)
        alg = token_alg(header)
        key: Any
        if alg == "HS256":
            key = self.secret
        else:
            kid = header.get("kid")
            match = next((k for k in self.signing_keys if k.kid == kid and k.alg == alg), None)
            if match is None:
                raise token_error("invalid JWT: unknown signing key")
            key = match.jwk.key
            if hasattr(key, "public_key"):
                key = key.public_key()
        # GoTrue and PostgREST accept a token without exp (service-role tokens minted by tools)
        return decode_claims(token, key, alg, audience=audience, require_exp=False)


def _load_jwks(path: Path) -> list[SigningKey]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read signing keys: {exc}") from None
    if isinstance(data, dict) and "keys" in data:
        data = data["keys"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: signing keys must be a non-empty JSON array of JWKs")
    keys: list[SigningKey] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "kid" not in item or item.get("alg") not in ASYMMETRIC_ALGS:
            raise ConfigError(f"{path}: key {i} needs a 'kid' and an 'alg' of {', '.join(ASYMMETRIC_ALGS)}")
        try:
            pyjwk = jwt.PyJWK(item)
        except jwt.PyJWTError as exc:
            raise ConfigError(f"{path}: key {i}: {exc}") from None
        private = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
        public = {k: v for k, v in item.items() if k not in private}
        public.setdefault("use", "sig")
        public["key_ops"] = ["verify"]
        keys.append(SigningKey(kid=str(item["kid"]), alg=str(item["alg"]), jwk=pyjwk, public_jwk=public))
    return keys
