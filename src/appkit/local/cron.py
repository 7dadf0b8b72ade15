"""The local stack's pg_cron scheduler: runs the jobs of appkit's emulated pg_cron extension.

Jobs live in the database (``cron.job``, written by ``cron.schedule`` & co.), so they
survive restarts. Until the extension exists the scheduler only looks for it every
:data:`PROBE_EVERY` seconds; then it keeps one connection that LISTENs on ``appkit_cron``
(the extension's ``cron.job`` trigger notifies on every change) and holds a session advisory
lock: only the scheduler holding it runs jobs, so two stacks on one database never run a job
twice. At each second it starts the jobs due then (UTC; ``'N seconds'`` schedules at
multiples of N); each run opens its own connection logged in as the job's ``username`` to the
job's ``database`` (over the embedded server's Unix socket, where local logins are trusted),
sends the command as one simple query, as pg_cron does, and is recorded in
``cron.job_run_details`` with pg_cron's statuses and return messages. A job still running at
its next slot is not started again: one more run is queued and starts when it finishes
(pg_cron's rule). When the connection breaks (the supervisor restarting Postgres, a reset) the
scheduler reconnects with backoff; runs a dead server left ``starting``/``running`` are marked
``failed`` with ``server restarted``. A database with a real pg_cron is left to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, pq
from psycopg.conninfo import make_conninfo

from appkit.db.queries import load_queries
from appkit.local.cronspec import Schedule, ScheduleError, parse

log = logging.getLogger("appkit.local.cron")

_Q = load_queries("appkit.local", "cron.sql")

#: pg_advisory_lock key held by the scheduler that runs the jobs ("appkit:cron")
LOCK_KEY = 0x61707069_63726F6E
#: pg_cron's cron.max_running_jobs default
MAX_RUNNING = 32
#: seconds between two full reloads of cron.job (besides the notifications)
RELOAD_EVERY = 10.0
#: seconds between two looks for the extension in a database without it (a short-lived
#: connection each time: a stack whose project does not use pg_cron holds none)
PROBE_EVERY = 5.0
#: seconds between reconnect attempts
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
#: missed seconds (a blocked loop, a suspended machine) the scheduler catches up at most
CATCH_UP = 60
#: seconds without a run after which the connection that records runs is closed (an idle
#: stack keeps one scheduler connection, the listener; a Postgres backend is a few MB)
WRITER_IDLE = 15.0


@dataclass(frozen=True)
class Job:
    jobid: int
    schedule: Schedule
    command: str
    database: str
    username: str
    active: bool


def _load(rows: list[tuple[Any, ...]]) -> dict[int, Job]:
    jobs: dict[int, Job] = {}
    for jobid, schedule, command, database, username, active in rows:
        try:
            parsed = parse(str(schedule))
        except ScheduleError:
            log.warning("invalid pg_cron schedule for job %s: %s", jobid, schedule)
            continue
        jobs[int(jobid)] = Job(int(jobid), parsed, str(command), str(database), str(username), bool(active))
    return jobs


def _result_message(cur: psycopg.AsyncCursor[Any]) -> str:
    """pg_cron's return message for the last result of a command: its tag, or ``N rows``."""
    message = ""
    while True:
        res = cur.pgresult
        if res is not None:
            if res.status == pq.ExecStatus.TUPLES_OK:
                message = f"{res.ntuples} {'row' if res.ntuples == 1 else 'rows'}"
            elif res.status == pq.ExecStatus.COMMAND_OK:
                message = (res.command_status or b"").decode(errors="replace")
            else:
                message = "0 rows"
        if not cur.nextset():
            return message


def _error_message(exc: psycopg.Error) -> str:
    """What libpq's PQresultErrorMessage gives pg_cron: ``ERROR:  <message>`` and its details."""
    res = exc.pgresult
    if res is not None and res.error_message:
        return res.error_message.decode(errors="replace")
    text = str(exc).strip()
    return text or type(exc).__name__


class CronScheduler:
    """Runs due pg_cron jobs of the database at ``conninfo`` (a superuser URL); ``run()`` until cancelled."""

    def __init__(self, conninfo: str, *, clock: Any = time.time) -> None:
        self.conninfo = conninfo
        self._clock = clock
        self._jobs: dict[int, Job] = {}
        self._running: dict[int, bool] = {}  # jobid -> one more run queued
        self._live_runs: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_RUNNING)
        self._writer: AsyncConnection[Any] | None = None
        self._writer_lock = asyncio.Lock()
        self._last_write = 0.0
        self._rebooted = False

    def _conninfo_for(self, database: str, username: str) -> str:
        return make_conninfo(self.conninfo, dbname=database, user=username, password="")

    async def run(self) -> None:
        failures = 0
        try:
            while True:
                try:
                    await self._session()
                    failures = 0
                    await asyncio.sleep(PROBE_EVERY)  # no pg_cron in the database (yet)
                except (psycopg.Error, OSError) as exc:
                    text = str(exc).strip().splitlines()
                    log.debug("pg_cron scheduler connection lost: %s", text[0] if text else type(exc).__name__)
                    await self._close_writer()
                    await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                    failures += 1
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._close_writer()

    async def _session(self) -> None:
        conn = await AsyncConnection.connect(
            self.conninfo, autocommit=True, application_name="pg_cron scheduler", connect_timeout=5,
        )
        async with conn:
            if not await self._emulated(conn):
                return
            await conn.execute("listen appkit_cron")
            while not await self._lead(conn):
                # another scheduler (a second stack on this database) runs the jobs
                async for _ in conn.notifies(timeout=5.0):
                    pass
            await self._reload(conn, first=True)
            loaded = time.monotonic()
            last = math.floor(self._clock())
            while True:
                changed = False
                wait = max(0.0, last + 1 - self._clock())
                async for _ in conn.notifies(timeout=wait):
                    changed = True
                    if self._clock() >= last + 1:
                        break
                if changed or time.monotonic() - loaded >= RELOAD_EVERY:
                    if not await self._reload(conn) and not self._tasks:
                        return  # the extension was dropped: back to probing
                    loaded = time.monotonic()
                now = math.floor(self._clock())
                if now <= last:
                    continue
                due = {
                    job.jobid: job
                    for second in range(max(last + 1, now - CATCH_UP + 1), now + 1)
                    for job in self._jobs.values()
                    if job.active and job.schedule.due(second)
                }
                last = now
                for job in due.values():
                    self._fire(job)
                if self._writer is not None and not self._tasks and time.monotonic() - self._last_write > WRITER_IDLE:
                    async with self._writer_lock:
                        await self._close_writer()

    @staticmethod
    async def _lead(conn: AsyncConnection[Any]) -> bool:
        row = await (await conn.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,))).fetchone()
        return bool(row and row[0])

    @staticmethod
    async def _emulated(conn: AsyncConnection[Any]) -> bool:
        row = await (await conn.execute(_Q["emulated"])).fetchone()
        return bool(row and row[0])

    async def _reload(self, conn: AsyncConnection[Any], *, first: bool = False) -> bool:
        """Load the jobs; False when the database has no (emulated) pg_cron."""
        if not await self._emulated(conn):
            self._jobs = {}
            return False
        self._jobs = _load(await (await conn.execute(_Q["jobs"])).fetchall())
        if first:
            await conn.execute(_Q["fail_orphaned_runs"], {"live": list(self._live_runs)})
            if not self._rebooted:
                self._rebooted = True
                for job in self._jobs.values():
                    if job.active and job.schedule.reboot:
                        self._fire(job)
        return True

    def _fire(self, job: Job) -> None:
        if job.jobid in self._running:
            self._running[job.jobid] = True  # still running: run once more when it ends
            return
        self._running[job.jobid] = False
        task = asyncio.create_task(self._run_job(job), name=f"pg_cron job {job.jobid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: Job) -> None:
        jobid = job.jobid
        try:
            while True:
                async with self._slots:
                    await self._run_once(job)
                if not self._running.get(jobid):
                    return
                self._running[jobid] = False
                current = self._jobs.get(jobid)  # the queued run uses the job as it is now
                if current is None or not current.active:
                    return
                job = current
        except (psycopg.Error, OSError) as exc:
            log.warning("pg_cron job %s could not be recorded: %s", jobid, str(exc).strip().splitlines()[:1])
        finally:
            self._running.pop(jobid, None)

    async def _write(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        async with self._writer_lock:
            self._last_write = time.monotonic()
            if self._writer is None or self._writer.closed:
                self._writer = await AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="pg_cron scheduler", connect_timeout=5,
                )
            try:
                cur = await self._writer.execute(_Q[name], params)
                return await cur.fetchone() if cur.description else None
            except psycopg.OperationalError:
                await self._close_writer()
                raise

    async def _close_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer.close()
            self._writer = None

    async def _connect(self, job: Job) -> AsyncConnection[Any]:
        return await AsyncConnection.connect(
            self._conninfo_for(job.database, job.username), autocommit=True, application_name="pg_cron",
            connect_timeout=10,
        )

    async def _run_once(self, job: Job) -> None:
        start = datetime.now(UTC)
        # the run is recorded ('starting') while the job's connection opens
        recorded, connected = await asyncio.gather(
            self._write("run_starting", {
                "jobid": job.jobid, "database": job.database, "username": job.username, "command": job.command,
            }),
            self._connect(job), return_exceptions=True,
        )
        if isinstance(recorded, BaseException):
            if isinstance(connected, AsyncConnection):
                await connected.close()
            raise recorded
        assert recorded is not None
        runid = int(recorded[0])
        self._live_runs.add(runid)
        try:
            if isinstance(connected, BaseException):
                if not isinstance(connected, psycopg.Error | OSError):
                    raise connected
                log.warning("pg_cron job %s: connection failed: %s", job.jobid,
                            str(connected).strip().splitlines()[:1])
                await self._write("run_finished", {
                    "runid": runid, "status": "failed", "message": "connection failed", "start": start,
                    "end": datetime.now(UTC),
                })
                return
            async with connected as conn:
                start = datetime.now(UTC)
                # 'running' is recorded while the command runs (on another connection)
                running = asyncio.create_task(
                    self._write("run_running", {"runid": runid, "pid": conn.info.backend_pid, "start": start}))
                status, message = "succeeded", ""
                try:
                    async with conn.cursor() as cur:
                        await cur.execute(job.command.encode())
                        message = _result_message(cur)
                except psycopg.OperationalError as exc:
                    if not conn.closed and not conn.broken:
                        status, message = "failed", _error_message(exc)
                    else:
                        status, message = "failed", "connection failed"
                except psycopg.Error as exc:
                    status, message = "failed", _error_message(exc)
                finally:
                    await running
                await self._write("run_finished", {
                    "runid": runid, "status": status, "message": message, "start": start, "end": datetime.now(UTC),
                })
        finally:
            self._live_runs.discard(runid)
