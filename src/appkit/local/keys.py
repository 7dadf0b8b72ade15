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

from appkit._jwt import EXPIRED_JWT, decode_claims, token_alg, token_error, token_header
from appkit.errors import ConfigError

#: The Supabase CLI's demo keys expire at this instant (2032-11-02); we sign the same claims.
DEMO_KEY_EXP = 1983812996


@dataclass(frozen=True)
class SigningKey:
    """One JWK of ``signing_keys_path``: it verifies tokens naming its ``kid``; the one whose
    ``key_ops`` hold ``sign`` also signs (GoTrue's ``GOTRUE_JWT_KEYS`` rules)."""

    kid: str | None
    alg: str
    jwk: jwt.PyJWK
    #: what ``/.well-known/jwks.json`` lists; None for a symmetric (oct) key, never published
    public_jwk: dict[str, Any] | None
    can_sign: bool = False

    @property
    def symmetric(self) -> bool:
        return self.public_jwk is None


#: verified tokens remembered (signature checks cost ~0.3 ms each in PyJWT)
VERIFIED_CACHE_SIZE = 4096


@dataclass
class _Verified:
    """A verified token's claims and, once asked for, their JSON."""

    claims: dict[str, Any]
    json: str | None = None


@dataclass
class JWTKeys:
    secret: str
    signing_keys: list[SigningKey] = field(default_factory=list)
    _verified: OrderedDict[tuple[str, str | tuple[str, ...] | None], _Verified] = field(
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
    @property
    def signer(self) -> SigningKey | None:
        """The key that signs access tokens (None: HS256 with the project secret)."""
        return next((k for k in self.signing_keys if k.can_sign), None)

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign with the signing key when configured (its ``kid`` in the header), else HS256
        with the project secret."""
        key = self.signer
        if key is not None:
            headers = {"kid": key.kid} if key.kid is not None else None
            return jwt.encode(claims, key.jwk.key, algorithm=key.alg, headers=headers)
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (``/.well-known/jwks.json``); symmetric keys are never listed."""
        return {"keys": [k.public_jwk for k in self.signing_keys if k.public_jwk is not None]}

    # -- verification ------------------------------------------------------------
    def verify(self, token: str, *, audience: str | list[str] | None = None) -> dict[str, Any]:
        """Return the claims of a valid token or raise :class:`AuthError`.

        ``code`` is one of ``bad_jwt`` (malformed, tampered, bad alg, unknown kid),
        ``expired_jwt``, ``unexpected_audience`` (see :mod:`appkit._jwt`).
        A token verified before is answered from a bounded cache; its expiry is checked
        again on every use.
        """
        return dict(self._verified_entry(token, audience).claims)

    def verify_json(self, token: str, *, audience: str | list[str] | None = None) -> tuple[dict[str, Any], str]:
        """:meth:`verify`, plus the claims as compact JSON (what ``request.jwt.claims`` is set
        to), serialised once per cached token."""
        entry = self._verified_entry(token, audience)
        if entry.json is None:
            entry.json = json.dumps(entry.claims, separators=(",", ":"))
        return dict(entry.claims), entry.json

    def _verified_entry(self, token: str, audience: str | list[str] | None) -> _Verified:
        key = (token, tuple(audience) if isinstance(audience, list) else audience)
        cached = self._verified.get(key)
        if cached is not None:
            if "exp" in cached.claims and float(cached.claims["exp"]) <= time.time():
                self._verified.pop(key, None)
                raise token_error("JWT expired", EXPIRED_JWT)
            self._verified.move_to_end(key)
            return cached
        entry = _Verified(self._verify(token, audience))
        self._verified[key] = entry
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return entry

    def _verify(self, token: str, audience: str | list[str] | None) -> dict[str, Any]:
        header = token_header(token)
        alg = token_alg(header)
        kid = header.get("kid")
        key: Any
        if alg == "HS256":
            # an oct key of the list named by kid, else the project secret (GoTrue's fallback)
            match = next((k for k in self.signing_keys if k.symmetric and k.kid == kid), None) \
                if isinstance(kid, str) else None
            key = match.jwk.key if match is not None else self.secret
        else:
            match = next((k for k in self.signing_keys
                          if not k.symmetric and k.kid == kid and k.alg == alg), None)
            if match is None:
                raise token_error("invalid JWT: unknown signing key")
            key = match.jwk.key
            if hasattr(key, "public_key"):
                key = key.public_key()
        # GoTrue and PostgREST accept a token without exp (service-role tokens minted by tools)
        return decode_claims(token, key, alg, audience=audience, require_exp=False)


#: JWK members that are private key material
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: the algorithm a key signs with when its JWK names none (GoTrue signs oct keys with HS256)
_DEFAULT_ALG = {"RSA": "RS256", "OKP": "EdDSA", "oct": "HS256"}
_EC_ALG = {"P-256": "ES256", "P-521": "ES512"}
#: the algorithms GoTrue signs with, per key type
_KTY_ALGS = {"RSA": ("RS256", "RS512"), "EC": ("ES256", "ES512"), "OKP": ("EdDSA",), "oct": ("HS256",)}
#: a shorter HMAC key is refused, as ``[auth] jwt_secret`` under 16 characters is by the Supabase CLI
MIN_OCT_BYTES = 16


def _load_jwks(path: Path) -> list[SigningKey]:
    """Read a JWK list as GoTrue reads ``GOTRUE_JWT_KEYS`` (and the Supabase CLI's
    ``gen signing-key`` writes it): a JSON array (or a JWKS object) of oct, RSA, EC and OKP keys.

    ``key_ops`` decides which key signs: exactly one key may hold ``sign`` (GoTrue's "multiple
    signing keys detected"); when some keys carry ``key_ops`` but none signs, GoTrue's "no
    signing key detected". A list without any ``key_ops`` (appkit's earlier format) signs with
    its first key. An oct key signs HS256 with its ``k``; the project secret still verifies
    HS256 tokens whose ``kid`` names no key of the list.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read signing keys: {exc}") from None
    if isinstance(data, dict) and "keys" in data:
        data = data["keys"]
    elif isinstance(data, dict) and "kty" in data:  # one key, as `supabase gen signing-key` prints it
        data = [data]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: signing keys must be a non-empty JSON array of JWKs")
    keys: list[SigningKey] = []
    for i, item in enumerate(data):
        keys.append(_parse_jwk(path, i, item))
    if not any(isinstance(item, dict) and "key_ops" in item for item in data):
        keys[0] = SigningKey(keys[0].kid, keys[0].alg, keys[0].jwk, keys[0].public_jwk, can_sign=True)
    signers = [k for k in keys if k.can_sign]
    if not signers:
        raise ConfigError(f"{path}: no signing key detected (give one key \"key_ops\": [\"sign\", \"verify\"])")
    if len(signers) > 1:
        raise ConfigError(f"{path}: multiple signing keys detected, only 1 signing key is supported")
    kids = [k.kid for k in keys]
    if len(set(kids)) != len(kids):
        raise ConfigError(f"{path}: two keys share the kid {next(k for k in kids if kids.count(k) > 1)!r}")
    return keys


def _parse_jwk(path: Path, i: int, item: Any) -> SigningKey:
    where = f"{path}: key {i}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: not a JSON object")
    kty = item.get("kty")
    if kty not in _KTY_ALGS:
        raise ConfigError(f"{where}: kty must be one of oct, RSA, EC, OKP")
    kid = item.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ConfigError(f"{where}: kid must be a string")
    ops = item.get("key_ops", [])
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        raise ConfigError(f"{where}: key_ops must be an array of strings")
    alg = item.get("alg")
    if kty == "oct":
        alg = "HS256"
    elif alg is None:
        alg = _EC_ALG.get(str(item.get("crv"))) if kty == "EC" else _DEFAULT_ALG[kty]
    if alg not in _KTY_ALGS[kty]:
        raise ConfigError(f"{where}: a {kty} key signs with {' or '.join(_KTY_ALGS[kty])}, not {alg!r}")
    try:
        pyjwk = jwt.PyJWK({**item, "alg": alg})
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{where}: {exc or type(exc).__name__}") from None
    public: dict[str, Any] | None = None
    if kty == "oct":
        if len(pyjwk.key) < MIN_OCT_BYTES:
            raise ConfigError(f"{where}: an oct key needs at least {MIN_OCT_BYTES} bytes of 'k'")
    else:
        public = {k: v for k, v in item.items() if k not in _PRIVATE_MEMBERS}
        public["alg"] = alg
        public["use"] = "sig"
        public["key_ops"] = ["verify"]
    return SigningKey(kid=kid, alg=alg, jwk=pyjwk, public_jwk=public, can_sign="sign" in ops)
