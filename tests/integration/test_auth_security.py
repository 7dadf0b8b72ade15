"""Security and bad input at /auth/v1: forged tokens, malformed bodies, enumeration."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth_support import client, new_email

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session(stack):  # type: ignore[no-untyped-def]
    res = client(stack).sign_up({"email": new_email("sec"), "password": "secret-pass-1"})
    assert res.session is not None
    return res.session


def _b64(data: dict) -> str:  # type: ignore[type-arg]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _user(stack, token: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.get(f"{stack.api_url}/auth/v1/user",
                     headers={"apikey": stack.anon_key, "Authorization": f"Bearer {token}"})


def _forged(stack, session):  # type: ignore[no-untyped-def]
    good = session.access_token
    claims = jwt.decode(good, options={"verify_signature": False})
    header, payload, sig = good.split(".")
    tampered_claims = {**claims, "role": "service_role"}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "tampered signature": f"{header}.{payload}.{sig[:-4]}AAAA",
        "tampered payload": f"{header}.{_b64(tampered_claims)}.{sig}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 60, "iat": int(time.time()) - 4000},
                              stack.jwt_secret, algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, stack.jwt_secret, algorithm="HS256"),
        "wrong secret": jwt.encode(claims, "x" * 40, algorithm="HS256"),
        "unknown kid": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "nope"}),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("kind", ["tampered signature", "tampered payload", "alg none", "expired",
                                  "wrong audience", "wrong secret", "unknown kid", "garbage"])
def test_forged_tokens_are_401(stack, session, kind) -> None:  # type: ignore[no-untyped-def]
    assert _user(stack, session.access_token).status_code == 200
    r = _user(stack, _forged(stack, session)[kind])
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["code"] == 401 and body["error_code"] == "bad_jwt" and body["msg"]
    # the same token on the admin API is refused as well
    admin = httpx.get(f"{stack.api_url}/auth/v1/admin/users",
                      headers={"apikey": stack.anon_key, "Authorization": f"Bearer {_forged(stack, session)[kind]}"})
    assert admin.status_code in (401, 403)


def test_new_error_shape_with_api_version_header(stack) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(f"{stack.api_url}/auth/v1/user",
                  headers={"apikey": stack.anon_key, "Authorization": "Bearer x.y.z",
                           "X-Supabase-Api-Version": "2024-01-01"})
    assert r.status_code == 401
    assert r.json()["code"] == "bad_jwt" and r.json()["message"]
    assert r.headers["x-supabase-api-version"] == "2024-01-01"


def test_missing_bearer_and_missing_apikey(stack) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(f"{stack.api_url}/auth/v1/user", headers={"apikey": stack.anon_key})
    assert r.status_code == 401 and r.json()["error_code"] == "no_authorization"
    r = httpx.post(f"{stack.api_url}/auth/v1/signup", json={"email": new_email(), "password": "secret-pass-1"})
    assert r.status_code == 401 and r.json() == {"message": "No API key found in request"}
    r = httpx.post(f"{stack.api_url}/auth/v1/signup", headers={"apikey": "forged"},
                   json={"email": new_email(), "password": "secret-pass-1"})
    assert r.status_code == 401 and r.json() == {"message": "Invalid API key"}


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("signup", b"{not json", 400, "bad_json"),
    ("signup", b"[1, 2]", 400, "bad_json"),
    ("signup", json.dumps({"email": 5, "password": "secret-pass-1"}).encode(), 400, "bad_json"),
    ("signup", json.dumps({"email": "not-an-email", "password": "secret-pass-1"}).encode(), 400,
     "validation_failed"),
    ("signup", json.dumps({"email": "x@example.com'; drop table auth.users; --", "password": "p4ssword!"}).encode(),
     400, "validation_failed"),
    ("signup", json.dumps({"email": "ok@example.com"}).encode(), 422, "validation_failed"),
    ("signup", json.dumps({"email": "ok@example.com", "password": "x" * 80}).encode(), 422, "validation_failed"),
    ("signup", json.dumps({"phone": "12", "password": "secret-pass-1"}).encode(), 422, "phone_provider_disabled"),
    ("token?grant_type=password", json.dumps({"password": "x"}).encode(), 400, "validation_failed"),
    ("token?grant_type=password", json.dumps({"email": "a@b.co"}).encode(), 400, "validation_failed"),
    ("token?grant_type=refresh_token", b"{}", 400, "validation_failed"),
    ("token?grant_type=pkce", b"{}", 400, "validation_failed"),
    ("otp", json.dumps({"email": "nope"}).encode(), 400, "validation_failed"),
    ("otp", json.dumps({"phone": "abc"}).encode(), 400, "validation_failed"),
    ("otp", b"{}", 400, "validation_failed"),
    ("recover", json.dumps({"email": ""}).encode(), 400, "validation_failed"),
    ("verify", json.dumps({"type": "signup", "email": "a@b.co", "token": "123456"}).encode(), 403, "otp_expired"),
    ("verify", json.dumps({"type": "bogus", "token": "1"}).encode(), 400, "validation_failed"),
    ("resend", json.dumps({"type": "nope", "email": "a@b.co"}).encode(), 400, "validation_failed"),
    ("signup", b'{"email": "s@example.com", "password": "pass\\ud800word"}', 400, "bad_json"),
    ("token?grant_type=password", b'{"email": "\\udfff@example.com", "password": "x"}', 400, "bad_json"),
])
def test_bad_input_gets_documented_codes(stack, path, body, status, code) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{stack.api_url}/auth/v1/{path}", content=body,
                   headers={"apikey": stack.anon_key, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code


def test_unsupported_grant_type(stack) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=magic", json={}, headers={"apikey": stack.anon_key})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_invalid_signup_writes_nothing(stack, db) -> None:  # type: ignore[no-untyped-def]
    email = new_email("nowrite")
    r = httpx.post(f"{stack.api_url}/auth/v1/signup", headers={"apikey": stack.anon_key},
                   json={"email": email, "password": "x"})
    assert r.status_code == 422 and r.json()["error_code"] == "weak_password"
    assert db.execute("select count(*) from auth.users where email = %s", (email,)).fetchone() == (0,)


def test_admin_bad_input(stack) -> None:  # type: ignore[no-untyped-def]
    h = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    base = f"{stack.api_url}/auth/v1/admin/users"
    assert httpx.get(f"{base}/not-a-uuid", headers=h).json()["error_code"] == "user_not_found"
    r = httpx.get(f"{base}?page=abc", headers=h)
    assert r.status_code == 400 and r.json()["error_code"] == "validation_failed"
    r = httpx.post(base, headers=h, json={"email": new_email(), "ban_duration": "forever"})
    assert r.status_code == 400 and r.json()["error_code"] == "validation_failed"
    r = httpx.post(base, headers=h, json={"email": new_email(), "password_hash": "plaintext"})
    assert r.status_code == 400 and r.json()["error_code"] == "validation_failed"
    r = httpx.post(f"{stack.api_url}/auth/v1/admin/generate_link", headers=h, json={"type": "nope", "email": "a@b.co"})
    assert r.status_code == 400 and r.json()["error_code"] == "validation_failed"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["email", "password", "phone", "data", "type", "token", "code_challenge",
                                              "code_challenge_method", "create_user"]),
                            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                                      st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                            st.integers(), max_size=2)),
                            max_size=5),
       path=st.sampled_from(["otp", "verify", "recover", "resend", "token?grant_type=password"]))
def test_fuzzed_bodies_never_500(stack, body, path) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{stack.api_url}/auth/v1/{path}", json=body, headers={"apikey": stack.anon_key})
    assert r.status_code < 500, (path, body, r.text)
