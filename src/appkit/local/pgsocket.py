"""Waiting on a libpq connection's socket from asyncio, for the code that drives libpq
directly (REST's pipeline fast path, realtime's replication stream)."""

from __future__ import annotations

import asyncio
import contextlib

from psycopg import pq


async def wait_socket(fd: int, *, write: bool = False, timeout: float | None = None) -> None:
    """Until ``fd`` is readable (or writable), or ``timeout`` seconds pass."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        if timeout is None:
            await ready
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready, timeout)
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def flush(pgconn: pq.abc.PGconn) -> None:
    """Send what libpq has buffered for a non-blocking connection."""
    while pgconn.flush():
        await wait_socket(pgconn.socket, write=True)
