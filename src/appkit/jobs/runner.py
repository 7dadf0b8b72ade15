"""One run of a worker: claims jobs, runs them on consumer tasks, records outcomes and heartbeats.

While it runs, a worker holds three direct Postgres connections:

- the *pump* claims ready jobs in batches (``FOR UPDATE SKIP LOCKED``, one statement that
  also marks the previous batch's successes), writes failures, and renews the leases of
  running jobs (heartbeats); it is the only user of its connection. Claimed jobs go to an
  ``Inbox`` that ``concurrency`` consumer tasks take them from;
- the *listener* waits on ``LISTEN appkit_jobs`` so an enqueue wakes the pump at once;
  a poll every ``poll_interval`` seconds covers lost notifications, delayed jobs and
  retries, and poolers in transaction mode where LISTEN does not work;
- *maintenance* (``appkit.jobs.maintenance``) re-queues jobs whose lease expired (a worker
  died), fires due cron schedules and purges finished jobs past their retention.

Every connection reconnects with backoff after an error (e.g. Postgres restarted); outcomes
not yet written are kept and written after the reconnect. A job's outcome is only recorded
while this worker still holds it (same worker id and attempt), so a job that was re-claimed
by another worker after this one lost its lease is never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import pydantic
from psycopg.rows import TupleRow

from appkit.jobs.connection import connect
from appkit.jobs.handler import Handler, JobContext, clean_error, error_text
from appkit.jobs.inbox import Claimed, Inbox
from appkit.jobs.maintenance import Maintenance
from appkit.jobs.queries import QUERIES

if TYPE_CHECKING:
    from appkit.jobs.worker import Worker

log = logging.getLogger("appkit.jobs")


def int_array(values: Iterable[int]) -> str:
    """A Postgres array literal of integers (cheaper to send than a list adapted element by element)."""
    return "{" + ",".join(map(str, values)) + "}"


@dataclass
class _Failure:
    id: int
    attempt: int
    error: str
    dead: bool
    retry_in: float
    max_attempts: int | None


@dataclass
class _State:
    """What the pump has yet to write, and which queues may have ready jobs."""

    succeeded: list[tuple[int, int]] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    maybe_ready: set[str] = field(default_factory=set)


class Run:
    """One run of a worker: its connections, in-flight jobs and background tasks."""

    def __init__(self, worker: Worker, url: str, queues: list[str]) -> None:
        self.w = worker
        self.url = url
        self.queues = queues
        self.state = _State(maybe_ready=set(queues))
        self.running: dict[int, Claimed] = {}
        self.inbox = Inbox()
        self.consumers: list[asyncio.Task[None]] = []
        self.idle = asyncio.Event()
        self.wake = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=worker.concurrency, thread_name_prefix="appkit-job")
        self.limits: dict[str, int | None] = dict.fromkeys(queues)
        self.stopping = False
        self.conn: psycopg.AsyncConnection[TupleRow] | None = None
        self.connected_once = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def main(self, stop: asyncio.Event) -> None:
        log.info("worker %s started: queues %s, concurrency %d", self.w.id, ",".join(self.queues),
                 self.w.concurrency)
        listener = asyncio.create_task(self._listen() if not self.w.transaction_pooler else asyncio.sleep(0),
                                       name="appkit-jobs-listen")
        maintenance = asyncio.create_task(Maintenance(self.w, self.url).run(), name="appkit-jobs-maintenance")
        pump = asyncio.create_task(self._pump(), name="appkit-jobs-pump")
        self.consumers = [asyncio.create_task(self._consume(), name=f"appkit-jobs-consumer-{i}")
                          for i in range(self.w.concurrency)]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({pump, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                pump.result()  # a crash of the pump is a bug: surface it
            self.stopping = True
            self.wake.set()
            await self._drain()
            self.wake.set()
            await pump
        finally:
            for task in (listener, maintenance, stopper, pump, *self.consumers):
                task.cancel()
            await asyncio.gather(listener, maintenance, stopper, pump, *self.consumers, return_exceptions=True)
            if self.conn is not None:
                await self.conn.close()
            self.executor.shutdown(wait=False, cancel_futures=True)
            log.info("worker %s stopped", self.w.id)

    async def _drain(self) -> None:
        """Let in-flight jobs finish within the grace period; release the rest."""
        if self.running and not self.w.hard_stopped:
            deadline = time.monotonic() + self.w.shutdown_grace
            while self.running and not self.w.hard_stopped and time.monotonic() < deadline:
                self.idle.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.idle.wait(), min(0.25, max(deadline - time.monotonic(), 0.01)))
        leftover = list(self.running.values())
        if not leftover:
            return
        log.warning("releasing %d job(s) that did not finish in time", len(leftover))
        for task in self.consumers:  # stops the jobs they run; the inbox's jobs are never started
            task.cancel()
        ids = [r.ctx.id for r in leftover]
        attempts = [r.ctx.attempt for r in leftover]
        for r in leftover:
            self.running.pop(r.ctx.id, None)
        for _ in range(3):
            try:
                conn = await self._connection()
                await conn.execute(QUERIES["release_jobs"], {"ids": ids, "attempts": attempts, "worker": self.w.id})
                return
            except psycopg.Error as exc:
                log.warning("could not release jobs (%s); they run again after their lease", exc)
                await self._drop()
                await asyncio.sleep(0.2)

    # -- connections ----------------------------------------------------------------------------

    async def _connection(self) -> psycopg.AsyncConnection[TupleRow]:
        if self.conn is None or self.conn.closed:
            self.conn = await connect(self.url, synchronous_commit=self.w.synchronous_commit,
                                       pooled=self.w.transaction_pooler)
            if self.connected_once:
                log.info("worker %s reconnected to Postgres", self.w.id)
            self.connected_once = True
            await self._load_limits(self.conn)
        return self.conn

    async def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self.conn.close()
            self.conn = None

    async def _load_limits(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        cur = await conn.execute(QUERIES["queue_settings"], {"queues": self.queues})
        rows = await cur.fetchall()
        self.limits = dict.fromkeys(self.queues)
        for name, concurrency in rows:
            self.limits[name] = concurrency

    # -- the pump -----------------------------------------------------------------------------

    async def _pump(self) -> None:
        backoff = 0.1
        next_poll = 0.0
        next_beat = time.monotonic() + self.w.lease / 3
        next_limits = time.monotonic() + 10.0
        while True:
            now = time.monotonic()
            if now >= next_poll and not self.stopping:
                self.state.maybe_ready.update(self.queues)
                next_poll = now + self.w.poll_interval
            try:
                conn = await self._connection()
                if now >= next_limits:
                    await self._load_limits(conn)
                    next_limits = now + 10.0
                await self._write_failures(conn)
                if not self.stopping:
                    await self._claim(conn)
                if self.state.succeeded:
                    await self._write_successes(conn)
                if time.monotonic() >= next_beat:
                    await self._heartbeat(conn)
                    next_beat = time.monotonic() + self.w.lease / 3
                backoff = 0.1
            except psycopg.Error as exc:
                log.warning("worker %s lost its database connection (%s: %s); retrying in %.1f s",
                            self.w.id, type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc) else "",
                            backoff)
                await self._drop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                next_poll = 0.0
                continue
            if self.stopping and not self.running and not self.state.succeeded and not self.state.failures:
                return
            if self.state.succeeded or self.state.failures:
                continue
            free = self.w.concurrency - len(self.running)
            if free > 0 and self.state.maybe_ready and not self.stopping:
                continue
            timeout = max(0.0, min(next_poll, next_beat) - time.monotonic())
            if self.stopping:
                timeout = min(timeout, 0.25)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
            self.wake.clear()

    async def _claim(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        for queue in list(self.queues):
            free = self.w.concurrency - len(self.running)
            if free <= 0:
                return
            if queue not in self.state.maybe_ready:
                continue
            limit = min(free, self.w.batch_size)
            concurrency = self.limits.get(queue)
            done = list(self.state.succeeded)
            params: dict[str, Any] = {
                "queue": queue, "limit": limit, "lease": self.w.lease, "worker": self.w.id,
                "concurrency": concurrency, "done_ids": int_array(d[0] for d in done),
                "done_attempts": int_array(d[1] for d in done),
            }
            if concurrency is None:
                cur = await conn.execute(QUERIES["claim_jobs"], params)
                row = await cur.fetchone()
            else:
                async with conn.transaction():
                    await conn.execute(QUERIES["lock_queue"], {"queue": queue})
                    cur = await conn.execute(QUERIES["claim_jobs"], params)
                    row = await cur.fetchone()
            del self.state.succeeded[: len(done)]
            claimed = self._start(queue, row) if row is not None else 0
            if claimed < limit:
                self.state.maybe_ready.discard(queue)

    def _start(self, queue: str, row: tuple[Any, ...]) -> int:
        """Hand a claimed batch (one row of parallel arrays) to the consumers; returns its size."""
        ids, attempts, max_attempts, priorities, created, payloads = row
        handler = self.w.handlers[queue]
        parsed = json.loads(payloads)
        jobs = [Claimed(JobContext(id=job_id, queue=queue, attempt=attempts[i], max_attempts=max_attempts[i],
                                   priority=priorities[i], created_at=created[i], worker_id=self.w.id),
                        handler, parsed[i])
                for i, job_id in enumerate(ids)]
        for job in jobs:
            self.running[job.ctx.id] = job
        self.inbox.put_many(jobs)
        return len(jobs)

    async def _consume(self) -> None:
        """One of ``concurrency`` consumers: runs the inbox's jobs one after another."""
        me = asyncio.current_task()
        while True:
            job = await self.inbox.get()
            if job.ctx.id not in self.running:  # released meanwhile
                continue
            job.task = me
            try:
                await self._execute(job.ctx, job.handler, job.payload)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in the worker itself: keep this consumer alive
                log.exception("job %d (%s): worker error", job.ctx.id, job.ctx.queue)

    async def _execute(self, ctx: JobContext, handler: Handler, payload: Any) -> None:
        started = time.perf_counter()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %d (%s) attempt %d started", ctx.id, ctx.queue, ctx.attempt, extra=self._extra(ctx))
        try:
            try:
                value = handler.parse(payload)
            except pydantic.ValidationError as exc:
                model = handler.model.__name__ if handler.model else "the handler"
                error = clean_error(f"invalid payload for {model}: {exc}")
                self._failed(ctx, handler, error, dead=True, started=started)
                return
            args = (value, ctx) if handler.wants_context else (value,)
            try:
                if handler.is_async:
                    await handler.fn(*args)
                else:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(self.executor, lambda: handler.fn(*args))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(ctx, handler, error_text(exc), dead=False, started=started)
                return
            self.state.succeeded.append((ctx.id, ctx.attempt))
            ms = (time.perf_counter() - started) * 1000
            if log.isEnabledFor(logging.INFO):
                log.info("job %d (%s) succeeded in %.1f ms", ctx.id, ctx.queue, ms,
                         extra={**self._extra(ctx), "status": "succeeded", "duration_ms": round(ms, 3)})
        finally:
            current = self.running.get(ctx.id)
            if current is not None and current.ctx is ctx:
                del self.running[ctx.id]
                if not self.running:
                    self.idle.set()
            self.wake.set()

    def _extra(self, ctx: JobContext) -> dict[str, Any]:
        return {"job_id": ctx.id, "queue": ctx.queue, "attempt": ctx.attempt, "worker": self.w.id}

    def _failed(self, ctx: JobContext, handler: Handler, error: str, *, dead: bool, started: float) -> None:
        limit = handler.max_attempts or ctx.max_attempts
        final = dead or ctx.attempt >= limit
        retry_in = 0.0 if final else handler.retry_in(ctx.attempt)
        self.state.failures.append(_Failure(ctx.id, ctx.attempt, error, dead, retry_in, handler.max_attempts))
        ms = (time.perf_counter() - started) * 1000
        first = error.splitlines()[0] if error else ""
        extra = {**self._extra(ctx), "status": "dead" if final else "failed", "duration_ms": round(ms, 3),
                 "error": first}
        if final:
            log.error("job %d (%s) is dead after attempt %d: %s", ctx.id, ctx.queue, ctx.attempt, first, extra=extra)
        else:
            log.warning("job %d (%s) attempt %d failed, retry in %.1f s: %s", ctx.id, ctx.queue, ctx.attempt,
                        retry_in, first, extra=extra)

    async def _write_failures(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        while self.state.failures:
            f = self.state.failures[0]
            try:
                await conn.execute(QUERIES["fail_job"], {
                    "id": f.id, "attempt": f.attempt, "worker": self.w.id, "error": f.error, "dead": f.dead,
                    "retry_in": f.retry_in, "max_attempts": f.max_attempts,
                })
            except psycopg.DataError as exc:  # this record cannot be written: do not block the others
                log.error("could not record job %d's failure (%s); it runs again after its lease", f.id, exc)
            self.state.failures.pop(0)

    async def _write_successes(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        done = list(self.state.succeeded)
        await conn.execute(QUERIES["complete_jobs"], {
            "done_ids": int_array(d[0] for d in done), "done_attempts": int_array(d[1] for d in done),
            "worker": self.w.id,
        })
        del self.state.succeeded[: len(done)]

    async def _heartbeat(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        if not self.running:
            return
        jobs = [r.ctx for r in self.running.values()]  # the inbox's too: they are claimed
        await conn.execute(QUERIES["extend_leases"], {
            "ids": [c.id for c in jobs], "attempts": [c.attempt for c in jobs], "worker": self.w.id,
            "lease": self.w.lease,
        })

    # -- the listener -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            try:
                conn = await connect(self.url)
                async with conn:
                    await conn.execute(QUERIES["listen"])
                    backoff = 0.1
                    self.state.maybe_ready.update(self.queues)  # anything enqueued while we were not listening
                    self.wake.set()
                    async for note in conn.notifies():
                        if note.payload in self.limits:
                            self.state.maybe_ready.add(note.payload)
                            self.wake.set()
            except psycopg.Error as exc:
                log.debug("listener connection lost (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

