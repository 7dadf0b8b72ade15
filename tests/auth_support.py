"""Helpers for the auth service's tests: official clients on a stack, captured messages."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import pytest
from supabase_auth import AsyncGoTrueClient, SyncGoTrueClient, SyncMemoryStorage

from appkit.local.auth.mail import list_messages
from tests.support import StackHandle


def new_email(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def new_phone() -> str:
    return "1555" + "".join(random.choice("0123456789") for _ in range(7))


def random_ip() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def client(stack: StackHandle, *, flow_type: str = "implicit", ip: str | None = None,
           key: str | None = None) -> SyncGoTrueClient:
    headers = {"apikey": key or stack.anon_key}
    if ip:
        headers["X-Forwarded-For"] = ip
    return SyncGoTrueClient(url=stack.api_url + "/auth/v1", headers=headers, auto_refresh_token=False,
                            persist_session=True, storage=SyncMemoryStorage(), flow_type=flow_type)  # type: ignore[arg-type]


def async_client(stack: StackHandle, *, ip: str | None = None) -> AsyncGoTrueClient:
    headers = {"apikey": stack.anon_key}
    if ip:
        headers["X-Forwarded-For"] = ip
    return AsyncGoTrueClient(url=stack.api_url + "/auth/v1", headers=headers, auto_refresh_token=False)


def admin_client(stack: StackHandle) -> Any:
    return SyncGoTrueClient(
        url=stack.api_url + "/auth/v1", auto_refresh_token=False,
        headers={"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"},
    ).admin


def local_only(stack: StackHandle) -> None:
    """Skip on a real Supabase project (APPKIT_TEST_SUPABASE_URL): mail capture is local-only."""
    if stack.workdir is None:
        pytest.skip("captured e-mail/SMS exists only on the local stack")


def last_message(stack: StackHandle, recipient: str, kind: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    local_only(stack)
    deadline = time.monotonic() + timeout
    while True:
        msgs = list_messages(stack.db_url, recipient, kind=kind)
        if msgs:
            return msgs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind or ''} message captured for {recipient}")
        time.sleep(0.05)
