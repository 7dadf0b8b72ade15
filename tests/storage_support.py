"""Helpers for the storage tests: official storage3 clients as anon / users / service role."""

from __future__ import annotations

import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import jwt
import psycopg
from storage3 import AsyncStorageClient, SyncStorageClient

from tests.support import StackHandle


def storage_url(stack: StackHandle) -> str:
    return stack.api_url + "/storage/v1/"


def headers_for(stack: StackHandle, token: str) -> dict[str, str]:
    return {"apikey": stack.anon_key, "Authorization": f"Bearer {token}"}


def sync_client(stack: StackHandle, token: str) -> SyncStorageClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SyncStorageClient(storage_url(stack), headers_for(stack, token))


def async_client(stack: StackHandle, token: str) -> AsyncStorageClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AsyncStorageClient(storage_url(stack), headers_for(stack, token))


def user_token(stack: StackHandle, sub: str, *, exp_in: int = 3600, **extra: Any) -> str:
    now = int(time.time())
    claims = {"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + exp_in,
              "email": f"{sub[:8]}@example.test", **extra}
    return jwt.encode(claims, stack.jwt_secret, algorithm="HS256")


@dataclass
class User:
    id: str
    token: str


def create_user(stack: StackHandle, db: psycopg.Connection[Any]) -> User:
    uid = str(uuid.uuid4())
    db.execute(
        "insert into auth.users (id, aud, role, email, created_at, updated_at) values"
        " (%s, 'authenticated', 'authenticated', %s, now(), now())",
        (uid, f"storage-{uid[:12]}@example.test"))
    return User(uid, user_token(stack, uid))
