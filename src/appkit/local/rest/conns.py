"""A per-request connection lease over the shared psycopg pool.

Connections are borrowed from ``ctx.pool("rest")`` once and handed to requests through a
plain deque + futures, which costs a few microseconds per request instead of the pool's
full checkout/return cycle. Broken connections (or ones left in a transaction) go back to
the pool, which discards and replaces them; connections the lease has not lent for
``max_idle`` seconds go back too, so that the pool closes them when the stack is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from appkit.local.context import POOL_MAX_IDLE
from appkit.local.rest.errors import RestError

Conn = psycopg.AsyncConnection[Any]
#: statements a connection keeps prepared (psycopg's cache and the fast path's, the same bound)
PREPARED_MAX = 5000


def _has_input(conn: Conn) -> bool:
    """Whether an idle connection's socket has something to read (nothing should be)."""
    poller = select.poll()  # not select(): no limit on the descriptor's number
    try:
        poller.register(conn.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):
        return True


class ConnectionLease:
    def __init__(self, pool: AsyncConnectionPool, size: int, timeout: float = 30.0,
                 max_idle: float = POOL_MAX_IDLE) -> None:
        self.pool = pool
        self.size = size
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: deque[tuple[Conn, float]] = deque()  # (connection, returned at), most recent last
        self._waiters: deque[asyncio.Future[Conn | None]] = deque()
        self._out = 0  # connections borrowed from the pool (idle or in use)
        self._reaper: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        conn = await self._get()
        try:
            yield conn
        finally:
            await self._put(conn)

    async def _get(self) -> Conn:
        swept = False
        while True:
            if self._idle:
                conn = self._idle.pop()[0]  # the most recently used: the others may go idle
                if not _has_input(conn):
                    return conn
                # the server wrote to an idle connection: it ended the session (terminated,
                # restarted), and likely the other idle ones' too. Closed, the pool discards it
                # without a check; the pool's own idle connections are swept at once, else each
                # dead one would cost a request a failed check and psycopg_pool's retry delay
                # (1, 2, 4... s) -- and no request's statements go out on a dead connection
                self._out -= 1
                await conn.close()
                with contextlib.suppress(Exception):
                    await self.pool.putconn(conn)
                if not swept:
                    swept = True
                    with contextlib.suppress(Exception):
                        await self.pool.check()
                continue
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
                    raise RestError(503, "PGRST000", "Could not connect with the database") from None
            fut: asyncio.Future[Conn | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                got = await asyncio.wait_for(fut, self.timeout)
            except TimeoutError:
                raise RestError(504, "PGRST003", "Timed out acquiring connection from connection pool.") from None
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
            self._idle.append((conn, time.monotonic()))
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.create_task(self._reap(), name="rest-lease-reaper")
            return
        self._out -= 1
        with contextlib.suppress(Exception):
            await self.pool.putconn(conn)
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def _reap(self) -> None:
        """Give connections unused for ``max_idle`` seconds back to the pool (oldest first)."""
        while self._idle:
            await asyncio.sleep(self.max_idle / 2)
            now = time.monotonic()
            while self._idle and now - self._idle[0][1] >= self.max_idle:
                conn, _ = self._idle.popleft()
                self._out -= 1
                with contextlib.suppress(Exception):
                    await self.pool.putconn(conn)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        while self._idle:
            conn, _ = self._idle.pop()
            self._out -= 1
            with contextlib.suppress(Exception):
                await self.pool.putconn(conn)
