"""Helpers for the jobs tests: unique queue names, running a worker in the test's loop, waiting on job states."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from appkit.jobs import Worker


def qname(prefix: str = "q") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running(worker: Worker, queues: Sequence[str] | None = None) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.serve(queues))
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)


def enqueue(db_url: str, queue: str, payload: Any, **kw: Any) -> int:
    from psycopg.types.json import Jsonb

    cols = ", ".join(f"{k} => %({k})s" for k in kw)
    sql = f"select (appkit.enqueue(%(queue)s, %(payload)s{', ' + cols if cols else ''})).id"
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(sql, {"queue": queue, "payload": Jsonb(payload), **kw}).fetchone()
    assert row is not None
    return int(row[0])


def job_rows(db_url: str, queue: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute("select * from appkit.jobs where queue = %s order by id", (queue,))
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


async def wait_until(check: Callable[[], bool], *, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def statuses(db_url: str, queue: str) -> list[str]:
    return [r["status"] for r in job_rows(db_url, queue)]
