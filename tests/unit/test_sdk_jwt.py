"""Server-side token verification: the attacks ``app.auth.verify`` must reject."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from appkit import AppKit, AsyncAppKit, errors

URL = "http://sdk.test"
JWKS_URL = f"{URL}/auth/v1/.well-known/jwks.json"
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
USER = str(uuid.uuid4())


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": USER, "role": "authenticated", "aud": "authenticated", "email": "a@example.com",
            "aal": "aal1", "session_id": "s1", "iat": now, "exp": now + 86400}  # built at collection time: outlive a long suite
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def app(secret: str | None = SECRET) -> AppKit:
    return AppKit(url=URL, anon_key="anon", jwt_secret=secret)


def test_valid_hs256_token() -> None:
    p = app().auth.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert str(p.user_id) == USER
    assert (p.role, p.email, p.aal, p.session_id, p.is_authenticated) == (
        "authenticated", "a@example.com", "aal1", "s1", True)
    assert p.claims["aud"] == "authenticated"


@pytest.mark.parametrize(("token_claims", "code"), [
    (claims(exp=int(time.time()) - 10), "expired_jwt"),
    (claims(exp=None), "bad_jwt"),
    (claims(aud="someone-else"), "unexpected_audience"),
    (claims(aud=None), "unexpected_audience"),
    (claims(nbf=int(time.time()) + 3600), "bad_jwt"),
])
def test_rejects_bad_claims(token_claims: dict[str, Any], code: str) -> None:
    with pytest.raises(errors.AuthError) as exc:
        app().auth.verify(jwt.encode(token_claims, SECRET, algorithm="HS256"))
    assert exc.value.code == code


def test_rejects_wrong_secret_and_tampering() -> None:
    with pytest.raises(errors.AuthError):
        app().auth.verify(jwt.encode(claims(), "another-secret-another-secret-another!", algorithm="HS256"))
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    header, payload, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["role"] = "service_role"
    with pytest.raises(errors.AuthError) as exc:
        app().auth.verify(f"{header}.{b64(json.dumps(forged).encode())}.{sig}")
    assert exc.value.code == "bad_jwt"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_rejects_alg_none(alg: str) -> None:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    for token in (f"{header}.{body}.", f"{header}.{body}.x"):
        with pytest.raises(errors.AuthError):
            app().auth.verify(token)


def test_rejects_other_algorithms_and_garbage() -> None:
    with pytest.raises(errors.AuthError):
        app().auth.verify(jwt.encode(claims(), SECRET, algorithm="HS512"))
    for garbage in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30"]:
        with pytest.raises(errors.AuthError):
            app().auth.verify(garbage)


def _user(uid: str) -> dict[str, Any]:
    return {"id": uid, "aud": "authenticated", "app_metadata": {}, "user_metadata": {},
            "created_at": "2026-01-01T00:00:00Z"}


@respx.mock
def test_hs256_without_secret_asks_the_auth_server() -> None:
    user = respx.get(f"{URL}/auth/v1/user")
    client = app(secret=None)
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    user.mock(return_value=httpx.Response(200, json=_user(USER)))
    assert str(client.auth.verify(token).user_id) == USER
    assert user.calls[-1].request.headers["authorization"] == f"Bearer {token}"
    user.mock(return_value=httpx.Response(401, json={"code": "bad_jwt", "msg": "invalid JWT"}))
    with pytest.raises(errors.AuthError):
        client.auth.verify(jwt.encode(claims(), "forged-secret-forged-secret-forged-secret", algorithm="HS256"))
    user.mock(return_value=httpx.Response(200, json=_user(str(uuid.uuid4()))))
    with pytest.raises(errors.AuthError):
        client.auth.verify(token)  # the server vouches for someone else
    calls = user.call_count
    with pytest.raises(errors.AuthError) as exc:
        client.auth.verify(jwt.encode(claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256"))
    assert exc.value.code == "expired_jwt"
    assert user.call_count == calls  # rejected locally, no request


def test_audience_can_be_relaxed_explicitly() -> None:
    token = jwt.encode(claims(aud=None, role="service_role", sub=None), SECRET, algorithm="HS256")
    p = app().auth.verify(token, audience=None)
    assert p.role == "service_role" and p.user_id is None and not p.is_authenticated


def _rsa() -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, jwk


@respx.mock
def test_jwks_asymmetric_keys_cached_and_refetched_on_unknown_kid() -> None:
    k1, jwk1 = _rsa()
    k2 = ec.generate_private_key(ec.SECP256R1())
    jwk2 = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k2.public_key()))
    jwk1.update(kid="k1", alg="RS256", use="sig")
    jwk2.update(kid="k2", alg="ES256", use="sig")
    route = respx.get(JWKS_URL).mock(side_effect=[
        httpx.Response(200, json={"keys": [jwk1]}),
        httpx.Response(200, json={"keys": [jwk1, jwk2]}),
    ])
    client = app(secret=None)
    t1 = jwt.encode(claims(), k1, algorithm="RS256", headers={"kid": "k1"})
    assert str(client.auth.verify(t1).user_id) == USER
    assert str(client.auth.verify(t1).user_id) == USER
    assert route.call_count == 1  # cached
    t2 = jwt.encode(claims(), k2, algorithm="ES256", headers={"kid": "k2"})
    assert client.auth.verify(t2).role == "authenticated"  # unknown kid -> one refetch
    assert route.call_count == 2
    # a token signed by a key that is not in the JWKS: rejected, and no refetch storm
    k3, _ = _rsa()
    t3 = jwt.encode(claims(), k3, algorithm="RS256", headers={"kid": "k3"})
    with pytest.raises(errors.AuthError):
        client.auth.verify(t3)
    with pytest.raises(errors.AuthError):
        client.auth.verify(t3)
    assert route.call_count == 2
    # right kid, wrong key
    t4 = jwt.encode(claims(), k3, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(errors.AuthError):
        client.auth.verify(t4)


@respx.mock
def test_algorithm_confusion_hs256_with_public_key_is_rejected() -> None:
    k1, jwk1 = _rsa()
    jwk1.update(kid="k1", alg="RS256")
    respx.get(JWKS_URL).mock(return_value=httpx.Response(200, json={"keys": [jwk1]}))
    # without a secret, HS256 tokens go to the auth server, which rejects this one
    server = respx.get(f"{URL}/auth/v1/user").mock(return_value=httpx.Response(
        401, json={"code": "bad_jwt", "msg": "invalid JWT: signature is invalid"}))
    client = app(secret=None)
    # sign HS256 with the public key's bytes as the "secret": classic confusion attack
    from cryptography.hazmat.primitives import serialization

    pem = k1.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    import hashlib
    import hmac

    sig = b64(hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(errors.AuthError):
        client.auth.verify(f"{header}.{body}.{sig}")
    assert server.call_count == 1  # never accepted on the strength of the public key
    with pytest.raises(errors.AuthError):  # and with a secret configured it fails locally
        app().auth.verify(f"{header}.{body}.{sig}")
    # and an RS256 header pointing at a symmetric JWKS entry is refused
    respx.get(JWKS_URL).mock(return_value=httpx.Response(200, json={"keys": [
        {"kty": "oct", "kid": "s", "k": b64(SECRET.encode())}]}))
    token = jwt.encode(claims(), k1, algorithm="RS256", headers={"kid": "s"})
    with pytest.raises(errors.AuthError):
        app(secret=None).auth.verify(token)


@respx.mock
def test_jwks_endpoint_failures_are_typed() -> None:
    k1, _ = _rsa()
    token = jwt.encode(claims(), k1, algorithm="RS256", headers={"kid": "k1"})
    respx.get(JWKS_URL).mock(return_value=httpx.Response(200, text="<html>"))
    with pytest.raises(errors.UnexpectedResponse):
        AppKit(url=URL, anon_key="anon", max_retries=0).auth.verify(token)
    respx.get(JWKS_URL).mock(return_value=httpx.Response(503))
    with pytest.raises(errors.ServiceUnavailable):
        AppKit(url=URL, anon_key="anon", max_retries=0).auth.verify(token)


async def test_async_verify() -> None:
    async with AsyncAppKit(url=URL, anon_key="anon", jwt_secret=SECRET) as client:
        p = await client.auth.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
        assert str(p.user_id) == USER
        with pytest.raises(errors.AuthError):
            await client.auth.verify(jwt.encode(claims(exp=1), SECRET, algorithm="HS256"))
