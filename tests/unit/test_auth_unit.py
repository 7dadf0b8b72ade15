"""Unit tests of the auth service's building blocks (no stack)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from starlette.requests import Request

from appkit.local.auth import totp
from appkit.local.auth.errors import GoTrueError, error_response
from appkit.local.auth.inputs import json_body, merge_metadata, redirect_allowed, validate_email, validate_phone
from appkit.local.auth.otp import pkce_matches, pkce_params
from appkit.local.auth.passwords import check_strength
from appkit.local.auth.ratelimit import Limiter, parse_duration
from appkit.local.config import AuthConfig

RFC6238_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(("at", "code"), [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"),
                                          (1234567890, "005924"), (2000000000, "279037")])
def test_totp_rfc6238_vectors(at: int, code: str) -> None:
    assert totp.code_at(RFC6238_SECRET, at) == code
    assert totp.verify(RFC6238_SECRET, code, at=at)
    assert totp.verify(RFC6238_SECRET, code, at=at + 30)  # one step of clock drift
    assert not totp.verify(RFC6238_SECRET, code, at=at + 95)


def test_totp_secret_and_uri() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32 and base64.b32decode(secret)
    uri = totp.uri(secret, "My App", "a@b.co")
    assert uri.startswith("otpauth://totp/My%20App:a@b.co?secret=") and "issuer=My+App" in uri
    assert totp.qr_svg(uri).startswith("<svg")


def test_password_strength() -> None:
    cfg = AuthConfig(minimum_password_length=8, password_requirements="lower_upper_letters_digits")
    with pytest.raises(GoTrueError) as err:
        check_strength(cfg, "short")
    assert err.value.error_code == "weak_password" and err.value.extra["weak_password"]["reasons"] == [
        "length", "characters"]
    check_strength(cfg, "Abcdefg1")
    with pytest.raises(GoTrueError) as err:
        check_strength(cfg, "A1" + "b" * 80)
    assert err.value.error_code == "validation_failed"


def test_limiter_sliding_window() -> None:
    lim = Limiter()
    assert [lim.allow("k", "ip", 2, 60) for _ in range(3)] == [True, True, False]
    assert lim.allow("k", "other", 2, 60)
    assert lim.allow("k2", "ip", 1, 0.0)


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1), ("60s", 60), ("1m30s", 90), ("24h", 86400),
                                               ("100ms", 0.1), ("1.5h", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "10", "h", "1x", "forever"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_redirect_allow_list() -> None:
    cfg = AuthConfig(site_url="http://localhost:3000", additional_redirect_urls=["https://app.example.com/**",
                                                                                "myapp://callback"])
    assert redirect_allowed(cfg, "http://localhost:3000/x?y=1") == "http://localhost:3000/x?y=1"
    assert redirect_allowed(cfg, "https://app.example.com/a/b") == "https://app.example.com/a/b"
    assert redirect_allowed(cfg, "myapp://callback") == "myapp://callback"
    assert redirect_allowed(cfg, "https://evil.com/https://app.example.com/") == "http://localhost:3000"
    assert redirect_allowed(cfg, "http://localhost:3001/") == "http://localhost:3000"
    assert redirect_allowed(cfg, None) == "http://localhost:3000"


def test_pkce() -> None:
    verifier = "a" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert pkce_matches("s256", challenge, verifier)
    assert not pkce_matches("s256", challenge, "b" * 50)
    assert pkce_matches("plain", verifier, verifier)
    with pytest.raises(GoTrueError):
        pkce_params({"code_challenge": "short", "code_challenge_method": "s256"})
    with pytest.raises(GoTrueError):
        pkce_params({"code_challenge": challenge, "code_challenge_method": "md5"})
    assert pkce_params({}) is None


def test_validation() -> None:
    assert validate_email("  Ada@Example.COM ") == "ada@example.com"
    assert validate_phone("+1 555-123-4567") == "15551234567"
    for bad in ("", "a@", "@b.co", "a b@c.co", "x" * 260 + "@b.co"):
        with pytest.raises(GoTrueError):
            validate_email(bad)
    for bad in ("", "+0123", "12a45", "1" * 16):
        with pytest.raises(GoTrueError):
            validate_phone(bad)
    with pytest.raises(GoTrueError) as err:
        json_body(b"{")
    assert err.value.error_code == "bad_json"
    assert merge_metadata({"a": 1, "b": 2}, {"b": None, "c": 3}) == {"a": 1, "c": 3}


def _request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [
        (k.lower().encode(), v.encode()) for k, v in headers.items()]})


def test_error_shapes_follow_api_version() -> None:
    err = GoTrueError(400, "invalid_credentials", "Invalid login credentials")
    old = error_response(_request({}), err)
    new = error_response(_request({"X-Supabase-Api-Version": "2024-01-01"}), err)
    assert old.body == b'{"code":400,"error_code":"invalid_credentials","msg":"Invalid login credentials"}'
    assert new.body == b'{"code":"invalid_credentials","message":"Invalid login credentials"}'
    assert old.headers["x-supabase-api-version"] == "2024-01-01"


def test_fast_hs256_signing_matches_pyjwt() -> None:
    from appkit.local.auth.sessions import sign
    from appkit.local.keys import JWTKeys

    keys = JWTKeys(secret="super-secret-jwt-token-with-at-least-32-characters-long")
    claims = {"aud": "authenticated", "exp": 2000000000, "sub": "x", "user_metadata": {"é": "ü", "n": [1, 2]},
              "amr": [{"method": "password", "timestamp": 1}], "is_anonymous": False}
    assert sign(keys, claims) == keys.sign(claims)
    assert keys.verify(sign(keys, claims))["sub"] == "x"


async def test_unknown_user_costs_the_same_bcrypt_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user enumeration by timing: an unknown user (no hash) or a broken hash still runs
    one bcrypt check at the configured cost, against a dummy hash."""
    import bcrypt

    from appkit.local.auth import passwords

    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(pw: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(pw, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", counting)
    hasher = passwords.Hasher(cost=5)
    good = await hasher.hash("right-password")
    assert await hasher.check("right-password", good)
    assert not await hasher.check("right-password", None)
    assert not await hasher.check("right-password", "not-a-bcrypt-hash")
    assert not await hasher.check("wrong-password", good)
    assert len(calls) == 4 and all(h.startswith(b"$2b$05$") for h in calls)
