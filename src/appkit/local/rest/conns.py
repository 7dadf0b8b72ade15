"""A per-request connection lease over the shared psycopg pool.

Connections are borrowed from ``ctx.pool("rest")`` once and handed to requests through a
plain deque + futures, which costs a few microseconds per request instead of the pool's
full checkout/return cycle. Broken connections (or ones left in a transaction) go back to
the pool, which discards and replaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from appkit.local.rest.errors import ApiError

Conn = psycopg.AsyncConnection[Any]
PREPARED_MAX = 5000


class ConnectionLease:
    def __init__(self, pool: AsyncConnectionPool, size: int, timeout: float = 30.0) -> None:
        self.pool = pool
        self.size = size
        self.timeout = timeout
        self._idle: deque[Conn] = deque()
        self._waiters: deque[asyncio.Future[Conn | None]] = deque()
        self._out = 0  # connections borrowed from the pool (idle or in use)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        conn = await self._get()
        try:
            yield conn
        finally:
            await self._put(conn)

    async def _get(self) -> Conn:
        while True:
            if self._idle:
                return self._idle.pop()
            if self._out < self.size:
                self._out += 1
                try:
                    conn = await self.pool.getconn(timeout=self.timeout)
                    # many distinct request shapes: keep their prepared statements (psycopg's
                    # default of 100 makes it deallocate statements a pipeline may still use)
                    conn.prepared_max = PREPARED_MAX
                    return conn
                except Exception:
                    self._out -= 1
                    raise ApiError(503, "PGRST000", "Could not connect with the database") from None
            fut: asyncio.Future[Conn | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                got = await asyncio.wait_for(fut, self.timeout)
            except TimeoutError:
                raise ApiError(504, "PGRST003", "Timed out acquiring connection from connection pool.") from None
            if got is not None:
                return got
            # a slot was freed (a broken connection went back to the pool): loop and borrow anew

    async def _put(self, conn: Conn) -> None:
        healthy = not conn.closed and not conn.broken and \
            conn.info.transaction_status == TransactionStatus.IDLE and conn._pipeline is None
        if healthy:
            while self._waiters:
                fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_result(conn)
                    return
            self._idle.append(conn)
            return
        self._out -= 1
        with contextlib.suppress(Exception):
            await self.pool.putconn(conn)
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def close(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            self._out -= 1
            with contextlib.suppress(Exception):
                await self.pool.putconn(conn)
