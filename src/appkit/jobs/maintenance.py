"""A worker's maintenance loop: re-queues jobs of dead workers, fires cron schedules, purges and vacuums."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import TupleRow

from appkit.errors import ValidationError
from appkit.jobs.connection import connect
from appkit.jobs.cron import Cron
from appkit.jobs.queries import QUERIES

if TYPE_CHECKING:
    from appkit.jobs.worker import Worker

log = logging.getLogger("appkit.jobs")


class Maintenance:
    """Runs on its own connection every ``maintenance_interval`` seconds until cancelled."""

    def __init__(self, worker: Worker, url: str) -> None:
        self.w = worker
        self.url = url

    async def run(self) -> None:
        backoff = 0.1
        next_purge = time.monotonic() + min(self.w.purge_interval, 5.0)
        next_vacuum_check = time.monotonic() + 5.0
        while True:
            try:
                conn = await connect(self.url, pooled=self.w.transaction_pooler)
                async with conn:
                    backoff = 0.1
                    while True:
                        await self._reap(conn)
                        if self.w.schedules:
                            await self._fire_schedules(conn)
                        if time.monotonic() >= next_purge:
                            await self._purge(conn)
                            next_purge = time.monotonic() + self.w.purge_interval
                        if self.w.vacuum_threshold is not None and time.monotonic() >= next_vacuum_check:
                            await self._vacuum(conn, self.w.vacuum_threshold)
                            next_vacuum_check = time.monotonic() + 5.0
                        await asyncio.sleep(self.w.maintenance_interval)
            except psycopg.Error as exc:
                log.debug("maintenance connection lost (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _reap(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        cur = await conn.execute(QUERIES["reap_expired"])
        for job_id, queue, status, _ in await cur.fetchall():
            log.warning("job %d (%s): its worker's lease expired; %s", job_id, queue,
                        "dead (out of attempts)" if status == "dead" else "queued again",
                        extra={"job_id": job_id, "queue": queue, "status": status})

    async def _fire_schedules(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        cur = await conn.execute(QUERIES["due_schedules"])
        now = datetime.now(UTC)
        for name, expression, tz, due in await cur.fetchall():
            try:
                cron = Cron.parse(expression)
                after = now if due is None or due < now else due
                nxt = cron.next_after(after, tz)
            except ValidationError as exc:
                log.error("schedule %s: %s (skipped)", name, exc, extra={"schedule": name})
                continue
            params = {"name": name, "next": nxt, "due": due, "cron": expression, "timezone": tz}
            if due is None:
                await conn.execute(QUERIES["init_schedule"], params)
                continue
            fired = await (await conn.execute(QUERIES["fire_schedule"], params)).fetchall()
            if fired:
                log.info("schedule %s fired (job %d); next at %s", name, fired[0][0], nxt.isoformat(),
                         extra={"schedule": name, "job_id": fired[0][0]})

    async def _vacuum(self, conn: psycopg.AsyncConnection[TupleRow], threshold: int) -> None:
        dead = int(await _fetch_value(conn, "dead_tuples") or 0)
        if dead < threshold or not await _fetch_value(conn, "vacuum_lock"):
            return
        try:
            started = time.perf_counter()
            await conn.execute(QUERIES["vacuum_jobs"], prepare=False)
            log.debug("vacuumed appkit.jobs (%d dead row versions) in %.0f ms", dead,
                      (time.perf_counter() - started) * 1000)
        finally:
            await conn.execute(QUERIES["vacuum_unlock"])

    async def _purge(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        total = 0
        while True:
            cur = await conn.execute(QUERIES["purge_jobs"], {"batch": self.w.purge_batch})
            row = await cur.fetchone()
            deleted = int(row[0]) if row else 0
            if deleted <= 0:
                break
            total += deleted
            if deleted < self.w.purge_batch:
                break
            await asyncio.sleep(0)
        if total:
            log.info("purged %d finished job(s) past their retention", total, extra={"purged": total})



async def _fetch_value(conn: psycopg.AsyncConnection[TupleRow], name: str) -> Any:
    row = await (await conn.execute(QUERIES[name])).fetchone()
    return row[0] if row else None

