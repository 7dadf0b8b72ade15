"""The database's health as the stack sees it, and the guard that answers for a service
while the database is down.

:class:`DatabaseHealth` is written by the supervisor (``appkit.local.supervisor``) and read
by ``/health``, ``/metrics`` and :class:`DatabaseGuard`. While the database is down the
guard answers every service request at once with that service's own 503 shape instead
of letting it wait for a pool connection; requests already waiting when the database
goes down (no response started yet) are cancelled and answered the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: (status, headers, body) of a service's "database unavailable" answer
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
Responder = Callable[[Scope, str], Answer]

_JSON = (b"content-type", b"application/json")


class DatabaseHealth:
    """Up/down state of the stack's database, with the reason and the restart count."""

    def __init__(self) -> None:
        self.up = True
        self.reason: str | None = None
        self.down_since: float | None = None
        self.restarts = 0
        self.downs = 0
        self._waiting: dict[asyncio.Task[Any], bool] = {}

    def mark_down(self, reason: str) -> None:
        """Record the outage and cancel the requests that are waiting on the database."""
        self.reason = reason
        if not self.up:
            return
        self.up = False
        self.downs += 1
        self.down_since = time.monotonic()
        for task in list(self._waiting):
            self._waiting[task] = True
            task.cancel()

    def mark_up(self, *, restarted: bool = False) -> None:
        if restarted:
            self.restarts += 1
        self.up = True
        self.reason = None
        self.down_since = None

    def as_json(self) -> dict[str, object]:
        return {"status": "up" if self.up else "down", "reason": self.reason, "restarts": self.restarts}


def rest_unavailable(scope: Scope, reason: str) -> Answer:
    body = {"code": "PGRST000", "details": reason, "hint": None, "message": "Could not connect with the database"}
    return 503, [_JSON], json.dumps(body).encode()


def auth_unavailable(scope: Scope, reason: str) -> Answer:
    from starlette.requests import Request

    from appkit.local.auth.errors import API_VERSION, API_VERSION_HEADER, uses_new_shape

    msg = f"Database is unavailable: {reason}"
    if uses_new_shape(Request(scope)):
        body: dict[str, object] = {"code": "unexpected_failure", "message": msg}
    else:
        body = {"code": 503, "error_code": "unexpected_failure", "msg": msg}
    return 503, [_JSON, (API_VERSION_HEADER.lower().encode(), API_VERSION.encode())], json.dumps(body).encode()


def storage_unavailable(scope: Scope, reason: str) -> Answer:
    body = {"statusCode": "503", "code": "DatabaseError", "error": "Service Unavailable",
            "message": f"The database is unavailable: {reason}"}
    headers = [_JSON]
    if any(k == b"tus-resumable" for k, _ in scope.get("headers", ())):
        headers.append((b"tus-resumable", b"1.0.0"))
    return 503, headers, json.dumps(body).encode()


def realtime_unavailable(scope: Scope, reason: str) -> Answer:
    return 503, [_JSON], json.dumps({"message": f"The database is unavailable: {reason}"}).encode()


RESPONDERS: dict[str, Responder] = {
    "rest": rest_unavailable, "auth": auth_unavailable, "storage": storage_unavailable,
    "realtime": realtime_unavailable,
}


class DatabaseGuard:
    """Answers a service's requests with its 503 shape while the database is down.

    ``routes`` maps a path prefix (``""`` for a service served alone) to the service's
    responder; paths under none of them (``/health``, ``/metrics``) always pass."""

    def __init__(self, app: ASGIApp, health: DatabaseHealth, routes: list[tuple[str, Responder]]) -> None:
        self.app = app
        self.health = health
        self.routes = routes

    def _responder(self, scope: Scope) -> Responder | None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if path in ("/health", "/metrics"):
            return None
        for prefix, responder in self.routes:
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return responder
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        responder = self._responder(scope)
        if responder is None:
            await self.app(scope, receive, send)
            return
        if not self.health.up:
            await _answer(scope, send, responder(scope, self.health.reason or "database down"))
            return
        task = asyncio.current_task()
        if kind == "websocket" or task is None:
            await self.app(scope, receive, send)
            return
        waiting = self.health._waiting
        waiting[task] = False

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                waiting.pop(task, None)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except asyncio.CancelledError:
            if not waiting.get(task):
                raise  # a real cancellation (client gone, shutdown), not ours
            task.uncancel()
            await _answer(scope, send, responder(scope, self.health.reason or "database down"))
        finally:
            waiting.pop(task, None)


async def _answer(scope: Scope, send: Callable[[Message], Awaitable[None]], answer: Answer) -> None:
    status, headers, body = answer
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"retry-after", b"1")]
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1013})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})
