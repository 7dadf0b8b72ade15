"""JWT keys: the Supabase CLI's demo keys, and verification attacks."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from appkit.errors import AuthError, ConfigError
from appkit.local.config import DEFAULT_JWT_SECRET
from appkit.local.keys import JWTKeys

SUPABASE_CLI_ANON = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9"
    ".CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
)
SUPABASE_CLI_SERVICE = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4Mz"
    "gxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU"
)


def test_default_keys_are_the_supabase_cli_demo_keys() -> None:
    keys = JWTKeys.load(DEFAULT_JWT_SECRET)
    assert keys.anon_key == SUPABASE_CLI_ANON
    assert keys.service_role_key == SUPABASE_CLI_SERVICE
    assert keys.verify(keys.anon_key)["role"] == "anon"


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_rejects_alg_none_tampered_expired_audience() -> None:
    keys = JWTKeys.load(DEFAULT_JWT_SECRET)
    claims = {"sub": "u", "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + 60}
    good = jwt.encode(claims, DEFAULT_JWT_SECRET, algorithm="HS256")
    assert keys.verify(good, audience="authenticated")["sub"] == "u"

    none_token = b64({"alg": "none", "typ": "JWT"}) + "." + b64({**claims, "role": "service_role"}) + "."
    with pytest.raises(AuthError) as e1:
        keys.verify(none_token)
    assert e1.value.code == "bad_jwt"

    head, body, sig = good.split(".")
    forged = head + "." + b64({**claims, "role": "service_role"}) + "." + sig
    with pytest.raises(AuthError, match="invalid JWT"):
        keys.verify(forged)

    other = jwt.encode(claims, "another-secret-that-is-long-enough-to-be-valid", algorithm="HS256")
    with pytest.raises(AuthError):
        keys.verify(other)

    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, DEFAULT_JWT_SECRET, algorithm="HS256")
    with pytest.raises(AuthError) as e2:
        keys.verify(expired)
    assert e2.value.code == "expired_jwt"

    with pytest.raises(AuthError) as e3:
        keys.verify(good, audience="something-else")
    assert e3.value.code == "unexpected_audience"

    no_exp = jwt.encode({"sub": "u", "role": "anon"}, DEFAULT_JWT_SECRET, algorithm="HS256")
    assert keys.verify(no_exp)["role"] == "anon"  # as GoTrue and PostgREST: exp is optional
    string_exp = jwt.encode({"sub": "u", "exp": str(int(time.time()) + 60)}, DEFAULT_JWT_SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        keys.verify(string_exp)

    for garbage in ("", "abc", "a.b.c", "ey.ey.ey"):
        with pytest.raises(AuthError):
            keys.verify(garbage)


def test_hs384_is_not_on_the_allow_list() -> None:
    keys = JWTKeys.load(DEFAULT_JWT_SECRET)
    tok = jwt.encode({"exp": int(time.time()) + 60}, DEFAULT_JWT_SECRET, algorithm="HS384")
    with pytest.raises(AuthError, match="not allowed"):
        keys.verify(tok)


def _write_keys(tmp_path: Path) -> Path:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = []
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key))  # type: ignore[attr-defined]
        jwk.update(kid=kid, alg=alg)
        jwks.append(jwk)
    path = tmp_path / "signing_keys.json"
    path.write_text(json.dumps(jwks))
    return path


def test_asymmetric_signing_keys(tmp_path: Path) -> None:
    keys = JWTKeys.load(DEFAULT_JWT_SECRET, _write_keys(tmp_path))
    token = keys.sign({"sub": "x", "exp": int(time.time()) + 60})
    assert jwt.get_unverified_header(token)["kid"] == "rsa-1"
    assert keys.verify(token)["sub"] == "x"
    public = keys.jwks()["keys"]
    assert [k["kid"] for k in public] == ["rsa-1", "ec-1"]
    assert all("d" not in k for k in public)
    # HS256 with the project secret still verifies
    assert keys.verify(keys.anon_key)["role"] == "anon"
    # unknown kid
    head, body, sig = token.split(".")
    bad_head = b64({"alg": "RS256", "typ": "JWT", "kid": "nope"})
    with pytest.raises(AuthError, match="unknown signing key"):
        keys.verify(bad_head + "." + body + "." + sig)


@pytest.mark.parametrize("content", ["not json", "[]", '[{"kty": "oct", "k": "abc"}]', '{"keys": [{"kid": 1}]}'])
def test_bad_signing_keys_file(tmp_path: Path, content: str) -> None:
    p = tmp_path / "k.json"
    p.write_text(content)
    with pytest.raises(ConfigError):
        JWTKeys.load(DEFAULT_JWT_SECRET, p)


def test_cached_verification_still_checks_expiry_and_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = JWTKeys.load(DEFAULT_JWT_SECRET)
    now = time.time()
    tok = jwt.encode({"sub": "u", "exp": int(now) + 5}, DEFAULT_JWT_SECRET, algorithm="HS256")
    first = keys.verify(tok)
    first["sub"] = "mutated"
    assert keys.verify(tok)["sub"] == "u", "callers get a copy, the cache is not shared state"
    monkeypatch.setattr(time, "time", lambda: now + 10)
    with pytest.raises(AuthError) as info:
        keys.verify(tok)
    assert info.value.code == "expired_jwt"
    # a tampered variant of a cached token is still rejected (the cache key is the whole token)
    head, _, sig = tok.split(".")
    with pytest.raises(AuthError):
        keys.verify(head + "." + b64({"sub": "admin", "exp": int(now) + 500}) + "." + sig)
