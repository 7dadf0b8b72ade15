"""Helpers for the realtime tests: user tokens, clients, waiting for callbacks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from realtime import AsyncRealtimeClient

from tests.support import StackHandle


def user_token(stack: StackHandle, sub: str | None = None, *, ttl: int = 3600, role: str = "authenticated") -> str:
    claims = {"sub": sub or str(uuid.uuid4()), "role": role, "aud": "authenticated",
              "exp": int(time.time()) + ttl, "iat": int(time.time())}
    return jwt.encode(claims, stack.jwt_secret, algorithm="HS256")


def ws_url(stack: StackHandle) -> str:
    return stack.api_url.replace("http", "ws") + "/realtime/v1"


async def client(stack: StackHandle, token: str | None = None, **kwargs: Any) -> AsyncRealtimeClient:
    c = AsyncRealtimeClient(ws_url(stack), stack.anon_key, **kwargs)
    await c.connect()
    if token is not None:
        await c.set_auth(token)
    return c


def config(*, self_: bool = False, ack: bool = False, presence_key: str = "", presence: bool = False,
           private: bool = False) -> dict[str, Any]:
    return {"config": {"broadcast": {"self": self_, "ack": ack},
                       "presence": {"key": presence_key, "enabled": presence}, "private": private}}


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Recorder:
    """Collects callback payloads."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.states: list[tuple[Any, Any]] = []

    def __call__(self, payload: Any) -> None:
        self.items.append(payload)

    def state(self, status: Any, error: Any) -> None:
        self.states.append((status, error))

    def __len__(self) -> int:
        return len(self.items)
