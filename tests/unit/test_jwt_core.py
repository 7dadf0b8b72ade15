"""The SDK's verifier (appkit.auth.jwt) and the local stack's (appkit.local.keys) share one
core (appkit._jwt): the same bad token gets the same error code from both."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from appkit.auth.jwt import verify_token
from appkit.errors import AuthError
from appkit.local.keys import JWTKeys

SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


def b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    base = {"sub": "u", "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + 3600}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def signed(**over: Any) -> str:
    return jwt.encode(claims(**over), SECRET, algorithm="HS256")


CASES = [
    (signed(exp=int(time.time()) - 10), "expired_jwt"),
    (signed(aud="someone-else"), "unexpected_audience"),
    (signed(aud=None), "unexpected_audience"),
    (signed(exp=str(int(time.time()) + 3600)), "bad_jwt"),  # a numeric string: GoTrue/PostgREST refuse it
    (signed(exp=True), "bad_jwt"),
    (signed(nbf=str(int(time.time()) - 60)), "bad_jwt"),
    (signed(iat=[1]), "bad_jwt"),
    (signed(nbf=int(time.time()) + 3600), "bad_jwt"),
    (jwt.encode(claims(), "another-secret-that-is-long-enough-to-be-valid", algorithm="HS256"), "bad_jwt"),
    (b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + ".", "bad_jwt"),
    (jwt.encode(claims(), SECRET, algorithm="HS512"), "bad_jwt"),
    ("not-a-token", "bad_jwt"),
    ("a.b.c", "bad_jwt"),
]


@pytest.mark.parametrize(("token", "code"), CASES)
def test_sdk_and_stack_agree_on_codes(token: str, code: str) -> None:
    with pytest.raises(AuthError) as sdk:
        verify_token(token, secret=SECRET, jwks=None, audience="authenticated")
    with pytest.raises(AuthError) as stack:
        JWTKeys.load(SECRET).verify(token, audience="authenticated")
    assert (sdk.value.code, stack.value.code) == (code, code)
    assert sdk.value.status == stack.value.status == 401


def test_both_accept_a_good_token() -> None:
    token = signed()
    assert verify_token(token, secret=SECRET, jwks=None, audience="authenticated").claims["sub"] == "u"
    assert JWTKeys.load(SECRET).verify(token, audience="authenticated")["sub"] == "u"


def test_exp_is_optional_for_the_services_and_required_by_the_sdk() -> None:
    # GoTrue and PostgREST accept a correctly signed token without exp (service-role tokens
    # minted by tools); the SDK, which checks user sessions, still requires one
    token = signed(exp=None, aud=None, role="service_role")
    assert JWTKeys.load(SECRET).verify(token)["role"] == "service_role"
    assert JWTKeys.load(SECRET).verify(token)["role"] == "service_role"  # and from the cache
    with pytest.raises(AuthError) as sdk:
        verify_token(signed(exp=None), secret=SECRET, jwks=None, audience="authenticated")
    assert sdk.value.code == "bad_jwt"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_time_claims_that_are_not_numbers_name_the_claim(claim: str) -> None:
    with pytest.raises(AuthError) as info:
        JWTKeys.load(SECRET).verify(signed(**{claim: "1700000000"}))
    assert info.value.details == {"claim": claim}
    assert f"The JWT '{claim}' claim must be a number" in info.value.message
