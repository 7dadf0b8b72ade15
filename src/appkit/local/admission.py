"""Admission control: at most ``limit`` HTTP requests in the services at once, the rest queued first come first served.

Without it every request that arrives starts at once, and under load the queue forms at
whichever database pool saturates first: the requests of that one service wait there while
the others' pass, and as wrk-style clients cycle through a mix, the connections pile up at
that service in turn (a convoy: p99 several times the mean). Queued here instead, before any
work, every request waits about the same time, and the ones admitted finish sooner because
fewer share the event loop.

A slow request must not hold up others (a long RPC, a slow upload, a large download): a
request gives its slot back after ``hold`` seconds even if it is still running, so the queue
always moves; ``/health``, ``/metrics`` and WebSockets are never queued.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

#: requests in the services at once (about the connections of REST's, storage's and auth's pools:
#: 10 + 10 + 6); 24 gave the shortest tail of 16, 24, 32 and 48 under the load benchmark
LIMIT = 24
#: seconds after which a running request no longer counts against the limit
HOLD = 0.25
EXEMPT = frozenset({"/health", "/metrics"})


class Admission:
    """Queue HTTP requests beyond ``limit`` in arrival order."""

    def __init__(self, app: ASGIApp, *, limit: int = LIMIT, hold: float = HOLD) -> None:
        if limit < 1 or hold <= 0:
            raise ValueError("limit must be >= 1 and hold > 0")
        self.app = app
        self.limit = limit
        self.hold = hold
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return sum(1 for f in self._waiters if not f.done())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        await self._acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release()

        timer = asyncio.get_running_loop().call_later(self.hold, release)
        try:
            await self.app(scope, receive, send)
        finally:
            timer.cancel()
            release()

    async def _acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed a slot as the client went away: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot goes straight to the longest waiting request
                return
        self._free += 1
