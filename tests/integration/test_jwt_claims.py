"""JWT claim rules as GoTrue and PostgREST apply them, on every service of the stack: ``exp`` is
optional, a time claim must be a JSON number, and GoTrue refuses claims its struct cannot hold
(403 ``bad_jwt``). Driven through the official clients."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

from tests.auth_support import admin_client, client, new_email
from tests.support import StackHandle


def token(stack: StackHandle, **claims: Any) -> str:
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, stack.jwt_secret, algorithm="HS256")


@pytest.fixture(scope="module")
def user_id(stack: StackHandle) -> str:
    created = admin_client(stack).create_user({"email": new_email("claims"), "password": "pw-123456",
                                               "email_confirm": True})
    return str(created.user.id)


def rest(stack: StackHandle, bearer: str) -> SyncPostgrestClient:
    return SyncPostgrestClient(stack.api_url + "/rest/v1",
                               headers={"apikey": stack.anon_key, "Authorization": f"Bearer {bearer}"})


def storage(stack: StackHandle, bearer: str) -> SyncStorageClient:
    return SyncStorageClient(stack.api_url + "/storage/v1/",
                             {"apikey": stack.anon_key, "Authorization": f"Bearer {bearer}"})


def test_a_token_without_exp_is_accepted_everywhere(stack: StackHandle, user_id: str) -> None:
    if not stack.jwt_secret:
        pytest.skip("needs the project's JWT secret")
    service = token(stack, role="service_role", iss="some-tool")  # no exp, no aud, no sub
    rows = rest(stack, service).from_("_appkit_nonexistent_table_check").select("*")
    with pytest.raises(APIError) as info:  # reaches the database as service_role: the table is unknown
        rows.execute()
    assert info.value.code == "PGRST205"
    assert isinstance(storage(stack, service).list_buckets(), list)
    assert admin_client(stack).get_user_by_id(user_id).user.id == user_id
    user = token(stack, sub=user_id, role="authenticated", aud="authenticated")
    assert client(stack).get_user(user).user.id == user_id  # /auth/v1/user


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_time_claim_given_as_a_string_is_refused_everywhere(stack: StackHandle, user_id: str, claim: str) -> None:
    if not stack.jwt_secret:
        pytest.skip("needs the project's JWT secret")
    value = str(int(time.time()) + (3600 if claim == "exp" else -60))
    bad = token(stack, sub=user_id, role="authenticated", aud="authenticated", **{claim: value})
    with pytest.raises(AuthApiError) as auth:
        client(stack).get_user(bad)
    assert (auth.value.status, auth.value.code) == (403, "bad_jwt")
    with pytest.raises(APIError) as api:
        rest(stack, bad).from_("anything").select("*").execute()
    assert (api.value.code, api.value.message) == ("PGRST303", f"The JWT '{claim}' claim must be a number")
    with pytest.raises(StorageApiError) as files:
        storage(stack, bad).list_buckets()
    assert files.value.message == f'"{claim}" claim must be a number'


@pytest.mark.parametrize(("claim", "value"), [
    ("role", 7), ("role", ["authenticated"]), ("session_id", 1), ("email", {"a": 1}), ("is_anonymous", "yes"),
    ("app_metadata", []), ("aud", 5), ("amr", "password"),
])
def test_gotrue_refuses_claims_it_cannot_decode(stack: StackHandle, user_id: str, claim: str, value: Any) -> None:
    if not stack.jwt_secret:
        pytest.skip("needs the project's JWT secret")
    claims: dict[str, Any] = {"sub": user_id, "role": "authenticated", "aud": "authenticated",
                              "exp": int(time.time()) + 600, claim: value}
    with pytest.raises(AuthApiError) as info:
        client(stack).get_user(token(stack, **claims))
    assert (info.value.status, info.value.code) == (403, "bad_jwt")
    assert "could not JSON decode claim" in info.value.message


def test_admin_endpoints_apply_the_same_claim_rules(stack: StackHandle) -> None:
    if not stack.jwt_secret:
        pytest.skip("needs the project's JWT secret")
    bad = token(stack, role=1, exp=int(time.time()) + 600)
    admin = SyncGoTrueClient(url=stack.api_url + "/auth/v1", auto_refresh_token=False,
                             headers={"apikey": stack.anon_key, "Authorization": f"Bearer {bad}"}).admin
    with pytest.raises(AuthApiError) as info:
        admin.get_user_by_id(str(uuid.uuid4()))
    assert (info.value.status, info.value.code) == (403, "bad_jwt")
