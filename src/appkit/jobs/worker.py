"""The jobs worker: claims jobs from Postgres, runs their handlers, records the outcome.

One ``Worker`` holds a registry of handlers (``@worker.job("emails")``) and, while it runs,
three direct Postgres connections (``SUPABASE_DB_URL``):

- the *pump* claims ready jobs in batches (``FOR UPDATE SKIP LOCKED``, one statement that
  also marks the previous batch's successes), writes failures, and renews the leases of
  running jobs (heartbeats); it is the only user of its connection;
- the *listener* waits on ``LISTEN appkit_jobs`` so an enqueue wakes the pump at once;
  a poll every ``poll_interval`` seconds covers lost notifications, delayed jobs and
  retries, and poolers in transaction mode where LISTEN does not work;
- *maintenance* re-queues jobs whose lease expired (a worker died), fires due cron
  schedules and purges finished jobs past their retention.

Every connection reconnects with backoff after an error (e.g. Postgres restarted); outcomes
not yet written are kept and written after the reconnect. A job's outcome is only recorded
while this worker still holds it (same worker id and attempt), so a job that was re-claimed
by another worker after this one lost its lease is never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import random
import signal
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString, TypeVar, get_type_hints

import psycopg
import pydantic
from psycopg.rows import TupleRow

from appkit.errors import ConfigError, ValidationError
from appkit.jobs.cron import Cron
from appkit.jobs.models import check_name
from appkit.jobs.queries import QUERIES

log = logging.getLogger("appkit.jobs")

F = TypeVar("F", bound=Callable[..., Any])
_ERROR_LIMIT = 8000


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler may ask about the job it runs (pass a second parameter to receive it)."""

    id: int
    queue: str
    attempt: int
    max_attempts: int
    priority: int
    created_at: datetime
    worker_id: str


@dataclass(frozen=True)
class Handler:
    """A registered handler: the function, the payload model it takes and its retry policy."""

    queue: str
    fn: Callable[..., Any]
    model: type[pydantic.BaseModel] | None
    max_attempts: int | None
    backoff: float
    max_backoff: float
    is_async: bool
    wants_context: bool

    def parse(self, payload: Any) -> Any:
        if self.model is None:
            return payload
        return self.model.model_validate(payload)

    def retry_in(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of ``backoff * 2**(attempt-1)``."""
        delay = float(min(self.max_backoff, self.backoff * 2.0 ** max(attempt - 1, 0)))
        return delay / 2 + random.random() * delay / 2  # noqa: S311 - jitter, not crypto


@dataclass(slots=True)
class _Running:
    """A claimed job: waiting in the inbox (``task`` None) or run by the consumer ``task``."""

    ctx: JobContext
    handler: Handler
    payload: Any
    task: asyncio.Task[None] | None = None


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


def _model_of(fn: Callable[..., Any]) -> tuple[type[pydantic.BaseModel] | None, bool]:
    """The payload model from the handler's first parameter annotation; whether it takes a context."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params:
        raise ConfigError(f"job handler {fn.__qualname__} must take the payload as its first parameter")
    try:
        hints = get_type_hints(fn)
    except Exception:  # an unresolvable annotation: treat the payload as raw JSON
        hints = {}
    ann = hints.get(params[0].name)
    model = ann if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel) else None
    return model, len(params) >= 2


def _error_text(exc: BaseException) -> str:
    """``Type: message`` on the first line, then the traceback (truncated)."""
    text = f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc)).strip()
    return _clean(text)


def _clean(text: str) -> str:
    """Fit an error for a text column: no NUL characters (Postgres refuses them), at most 8,000 characters."""
    text = text.replace("\x00", "\\0")
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 16] + "\n... (truncated)"


class Worker:
    """Runs job handlers for one or more queues.

    .. code-block:: python

        worker = Worker(concurrency=20)

        class Email(BaseModel):
            to: str

        @worker.job("emails", max_attempts=5)
        async def send(payload: Email) -> None: ...

        worker.run()   # until SIGTERM/SIGINT

    ``concurrency`` is the number of jobs this worker runs at once; ``batch_size`` how many it
    claims per statement (default: ``concurrency``); ``lease`` how long a claimed job stays
    this worker's without a heartbeat (heartbeats every ``lease / 3``); ``shutdown_grace`` how
    long in-flight jobs may take to finish after a stop before they are released.

    ``vacuum_threshold``: when ``appkit.jobs`` has this many dead row versions, one worker runs
    ``VACUUM`` on it (None: leave it to autovacuum, which wakes once a minute by default).
    ``synchronous_commit=False`` (default) lets the worker's own state changes (claim, done,
    heartbeat) skip the WAL flush wait; a database crash can then only make a job run again.
    ``transaction_pooler=True`` is for a URL through a pooler in transaction mode (Supavisor
    port 6543): no LISTEN (polling only), no prepared statements, no session settings.
    """

    def __init__(self, db_url: str | None = None, *, concurrency: int = 10, batch_size: int | None = None,
                 lease: float = 30.0, poll_interval: float = 1.0, shutdown_grace: float = 30.0,
                 schedules: bool = True, maintenance_interval: float = 1.0, purge_interval: float = 60.0,
                 purge_batch: int = 10000, vacuum_threshold: int | None = 100_000, synchronous_commit: bool = False,
                 transaction_pooler: bool = False, name: str | None = None) -> None:
        if concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        if lease < 1:
            raise ConfigError("lease must be at least 1 second")
        if poll_interval <= 0 or maintenance_interval <= 0 or purge_interval <= 0:
            raise ConfigError("intervals must be > 0")
        self.db_url = db_url
        self.concurrency = concurrency
        self.batch_size = batch_size or concurrency
        self.lease = float(lease)
        self.poll_interval = float(poll_interval)
        self.shutdown_grace = float(shutdown_grace)
        self.schedules = schedules
        self.maintenance_interval = float(maintenance_interval)
        self.purge_interval = float(purge_interval)
        self.purge_batch = purge_batch
        self.vacuum_threshold = vacuum_threshold
        self.synchronous_commit = synchronous_commit
        self.transaction_pooler = transaction_pooler
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.handlers: dict[str, Handler] = {}
        self._stop: asyncio.Event | None = None
        self._hard_stop = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- registry ---------------------------------------------------------------------------

    def job(self, queue: str, *, max_attempts: int | None = None, backoff: float = 1.0,
            max_backoff: float = 3600.0, model: type[pydantic.BaseModel] | None = None) -> Callable[[F], F]:
        """Register the decorated function as the handler of ``queue``.

        The function (sync or async) takes the payload, parsed into the pydantic model of its
        first parameter's annotation (or ``model``), and optionally a ``JobContext``. A payload
        that fails validation makes the job dead at once; an exception makes it retry after
        ``backoff * 2**(attempt-1)`` seconds (with jitter, at most ``max_backoff``) until
        ``max_attempts`` (default: the job's own ``max_attempts``) attempts were made.
        """
        check_name(queue)
        if max_attempts is not None and not 1 <= max_attempts <= 1000:
            raise ConfigError("max_attempts must be in 1..1000")
        if backoff < 0 or max_backoff < 0:
            raise ConfigError("backoff must be >= 0")

        def register(fn: F) -> F:
            if queue in self.handlers:
                raise ConfigError(f"queue {queue!r} already has a handler ({self.handlers[queue].fn.__qualname__})")
            found, wants_context = _model_of(fn)
            self.handlers[queue] = Handler(
                queue=queue, fn=fn, model=model or found, max_attempts=max_attempts, backoff=backoff,
                max_backoff=max_backoff, is_async=inspect.iscoroutinefunction(fn), wants_context=wants_context,
            )
            return fn

        return register

    # -- running ------------------------------------------------------------------------------

    def run(self, queues: Sequence[str] | None = None) -> None:
        """Run until SIGTERM or SIGINT (a second signal stops at once, releasing in-flight jobs)."""
        asyncio.run(self.serve(queues, handle_signals=True))

    def stop(self, *, now: bool = False) -> None:
        """Ask a running worker to stop: no new claims; in-flight jobs get ``shutdown_grace`` seconds."""
        if now:
            self._hard_stop = True
        loop, event = self._loop, self._stop
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def serve(self, queues: Sequence[str] | None = None, *, handle_signals: bool = False) -> None:
        """Run in the current event loop until ``stop()`` (or a signal, with ``handle_signals``)."""
        names = list(queues) if queues else list(self.handlers)
        if not names:
            raise ConfigError("the worker has no job handlers (decorate functions with @worker.job)")
        for q in names:
            if q not in self.handlers:
                raise ConfigError(f"no handler for queue {q!r} (known: {', '.join(sorted(self.handlers)) or 'none'})")
        url = self.db_url or os.environ.get("SUPABASE_DB_URL")
        if not url:
            raise ConfigError("the worker needs a database URL: pass db_url or set SUPABASE_DB_URL")
        run = _Run(self, url, names)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._hard_stop = False
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                    self._loop.add_signal_handler(sig, self._on_signal)
                    installed.append(sig)
        try:
            await run.main(self._stop)
        finally:
            for sig in installed:
                self._loop.remove_signal_handler(sig)
            self._loop = None
            self._stop = None

    def _on_signal(self) -> None:
        if self._stop is not None and self._stop.is_set():
            log.warning("second stop signal: releasing in-flight jobs now")
            self.stop(now=True)
        else:
            log.info("stopping: no new jobs; in-flight jobs have %.0f s to finish", self.shutdown_grace)
            self.stop()


async def _connect(url: str, *, synchronous_commit: bool = True,
                   pooled: bool = False) -> psycopg.AsyncConnection[TupleRow]:
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=10, application_name="appkit-jobs-worker",
        keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        prepare_threshold=None if pooled else 5,
    )
    if not synchronous_commit and not pooled:
        # State changes of claimed jobs need not wait for the WAL flush: one lost to a database
        # crash only makes its job run again (at least once), never lost. Enqueues are not
        # affected (they commit in the enqueuer's own session).
        await conn.execute("set synchronous_commit = off")
    return conn


class _Run:
    """One run of a worker: its connections, in-flight jobs and background tasks."""

    def __init__(self, worker: Worker, url: str, queues: list[str]) -> None:
        self.w = worker
        self.url = url
        self.queues = queues
        self.state = _State(maybe_ready=set(queues))
        self.running: dict[int, _Running] = {}
        self.inbox: asyncio.Queue[_Running] = asyncio.Queue()
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
        maintenance = asyncio.create_task(self._maintain(), name="appkit-jobs-maintenance")
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
        if self.running and not self.w._hard_stop:
            deadline = time.monotonic() + self.w.shutdown_grace
            while self.running and not self.w._hard_stop and time.monotonic() < deadline:
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
            self.conn = await _connect(self.url, synchronous_commit=self.w.synchronous_commit,
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
                "concurrency": concurrency, "done_ids": [d[0] for d in done], "done_attempts": [d[1] for d in done],
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
        for i, job_id in enumerate(ids):
            ctx = JobContext(id=job_id, queue=queue, attempt=attempts[i], max_attempts=max_attempts[i],
                             priority=priorities[i], created_at=created[i], worker_id=self.w.id)
            job = _Running(ctx, handler, parsed[i])
            self.running[job_id] = job
            self.inbox.put_nowait(job)
        return len(ids)

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
                error = _clean(f"invalid payload for {model}: {exc}")
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
                self._failed(ctx, handler, _error_text(exc), dead=False, started=started)
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
            "done_ids": [d[0] for d in done], "done_attempts": [d[1] for d in done], "worker": self.w.id,
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
                conn = await _connect(self.url)
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

    # -- maintenance ------------------------------------------------------------------------------

    async def _maintain(self) -> None:
        backoff = 0.1
        next_purge = time.monotonic() + min(self.w.purge_interval, 5.0)
        next_vacuum_check = time.monotonic() + 5.0
        while True:
            try:
                conn = await _connect(self.url, pooled=self.w.transaction_pooler)
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


def queries() -> dict[str, LiteralString]:
    """The worker's named SQL blocks (read-only view for tools and tests)."""
    return dict(QUERIES)
