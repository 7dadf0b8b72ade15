"""Signing-key lists as GoTrue's GOTRUE_JWT_KEYS takes them (oct, RSA, EC, OKP; key_ops decides
which key signs), and the Supabase CLI's `gen signing-key` output."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from appkit.errors import AuthError, ConfigError
from appkit.local.config import DEFAULT_JWT_SECRET
from appkit.local.keys import JWTKeys

OCT_SECRET = b"an-oct-key-of-the-list-0123456789"


def oct_jwk(kid: str, ops: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    jwk = {"kty": "oct", "kid": kid, "k": base64.urlsafe_b64encode(OCT_SECRET).rstrip(b"=").decode(), **extra}
    if ops is not None:
        jwk["key_ops"] = ops
    return jwk


def private_jwk(key: Any, alg: str, kid: str, ops: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key))  # type: ignore[attr-defined]
    jwk.update(kid=kid, **extra)
    if "alg" not in extra:
        jwk["alg"] = alg
    if ops is not None:
        jwk["key_ops"] = ops
    return jwk


def write(tmp_path: Path, keys: Any) -> Path:
    path = tmp_path / "signing_keys.json"
    path.write_text(json.dumps(keys))
    return path


def claims() -> dict[str, Any]:
    return {"sub": "u", "role": "authenticated", "exp": int(time.time()) + 60}


def test_gotrue_list_oct_verify_only_and_rsa_signing(tmp_path: Path) -> None:
    # the list: an HS256 oct key that only verifies, an RSA key that signs and verifies
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = JWTKeys.load(DEFAULT_JWT_SECRET, write(tmp_path, [
        oct_jwk("legacy", ["verify"], alg="HS256"),
        private_jwk(rsa_key, "RS256", "rsa-main", ["sign", "verify"]),
    ]))
    token = keys.sign(claims())
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": "rsa-main"}
    assert keys.verify(token)["sub"] == "u"
    # a token the oct key signed (named by kid) verifies with that key, not the project secret
    legacy = jwt.encode(claims(), OCT_SECRET, algorithm="HS256", headers={"kid": "legacy"})
    assert keys.verify(legacy)["sub"] == "u"
    # HS256 without kid (or with a kid the list lacks): the project secret, as GoTrue falls back
    assert keys.verify(keys.anon_key)["role"] == "anon"
    assert keys.verify(jwt.encode(claims(), DEFAULT_JWT_SECRET, algorithm="HS256", headers={"kid": "x"}))
    with pytest.raises(AuthError):
        keys.verify(jwt.encode(claims(), DEFAULT_JWT_SECRET, algorithm="HS256", headers={"kid": "legacy"}))
    # only the public RSA key is published, marked verify-only
    published = keys.jwks()["keys"]
    assert [k["kid"] for k in published] == ["rsa-main"]
    assert published[0]["key_ops"] == ["verify"] and published[0]["use"] == "sig" and "d" not in published[0]


@pytest.mark.parametrize(("make", "alg", "crv"), [
    (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", None),
    (lambda: ec.generate_private_key(ec.SECP521R1()), "ES512", None),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS512", None),
    (ed25519.Ed25519PrivateKey.generate, "EdDSA", "Ed25519"),
])
def test_every_key_type_gotrue_signs_with(tmp_path: Path, make: Any, alg: str, crv: str | None) -> None:
    verify_only = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = private_jwk(make(), alg, "signer", ["sign", "verify"])
    old = private_jwk(verify_only, "RS256", "old", ["verify"])
    keys = JWTKeys.load(DEFAULT_JWT_SECRET, write(tmp_path, [old, signer]))
    token = keys.sign(claims())
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert keys.verify(token)["sub"] == "u"
    # a token of the rotated-out key still verifies (key_ops ["verify"])
    previous = jwt.encode(claims(), verify_only, algorithm="RS256", headers={"kid": "old"})
    assert keys.verify(previous)["sub"] == "u"
    assert sorted(k["kid"] for k in keys.jwks()["keys"]) == ["old", "signer"]


def test_oct_signing_key_signs_hs256_with_its_kid(tmp_path: Path) -> None:
    keys = JWTKeys.load(DEFAULT_JWT_SECRET, write(tmp_path, [oct_jwk("hs", ["sign", "verify"])]))
    token = keys.sign(claims())
    assert jwt.get_unverified_header(token)["kid"] == "hs"
    assert jwt.decode(token, OCT_SECRET, algorithms=["HS256"])["sub"] == "u"
    assert keys.verify(token)["sub"] == "u"
    assert keys.jwks() == {"keys": []}  # symmetric keys are never published


def test_supabase_cli_gen_signing_key_shapes(tmp_path: Path) -> None:
    # `supabase gen signing-key` prints one JWK (use, key_ops, ext, kid a UUID); the file is an array
    cli_key = private_jwk(ec.generate_private_key(ec.SECP256R1()), "ES256",
                          "f462c42b-49b8-4014-9e4d-92580f1033bb", ["sign", "verify"], use="sig", ext=True)
    for content in (cli_key, [cli_key], {"keys": [cli_key]}):
        keys = JWTKeys.load(DEFAULT_JWT_SECRET, write(tmp_path, content))
        assert keys.verify(keys.sign(claims()))["sub"] == "u"
        assert keys.jwks()["keys"][0]["ext"] is True


@pytest.mark.parametrize(("content", "fragment"), [
    ([oct_jwk("a", ["sign"]), oct_jwk("b", ["sign", "verify"])], "multiple signing keys detected"),
    ([oct_jwk("a", ["verify"])], "no signing key detected"),
    ([oct_jwk("a", ["sign"]), oct_jwk("a", ["verify"])], "share the kid"),
    ([{"kty": "oct", "kid": "s", "k": "c2hvcnQ", "key_ops": ["sign"]}], "at least 16 bytes"),
    ([{"kty": "EC", "kid": "e", "crv": "P-256", "x": "AA", "y": "AA", "key_ops": ["sign"]}], "key 0"),
    ([{"kty": "RSA", "kid": "r", "alg": "ES256", "n": "AQAB", "e": "AQAB"}], "signs with RS256 or RS512"),
    ([{"kty": "XYZ", "kid": "x"}], "kty must be one of"),
    ([{"kty": "oct", "kid": 5, "k": "c2hvcnQ"}], "kid must be a string"),
    ([{"kty": "oct", "kid": "k", "k": "c2hvcnQ", "key_ops": "sign"}], "key_ops must be an array"),
    (["not an object"], "not a JSON object"),
])
def test_lists_gotrue_refuses_are_one_clear_error(tmp_path: Path, content: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        JWTKeys.load(DEFAULT_JWT_SECRET, write(tmp_path, content))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_an_asymmetric_token_must_name_a_key_of_the_list(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = JWTKeys.load(DEFAULT_JWT_SECRET, write(tmp_path, [private_jwk(rsa_key, "RS256", "k1", ["sign", "verify"])]))
    for headers in ({"kid": "k2"}, {}):
        with pytest.raises(AuthError, match="unknown signing key"):
            keys.verify(jwt.encode(claims(), rsa_key, algorithm="RS256", headers=headers))
    # the right kid but another algorithm (RS512 over an RS256 key) is refused too
    with pytest.raises(AuthError):
        keys.verify(jwt.encode(claims(), rsa_key, algorithm="RS512", headers={"kid": "k1"}))
