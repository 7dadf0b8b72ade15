"""The worker the jobs reliability and CLI tests run in subprocesses
(``appkit jobs work tests.jobs_worker_app:worker``): each run of a job is recorded in
``public.jobs_test_runs`` (start, end, worker, pid) so the tests can check what ran where."""

from __future__ import annotations

import asyncio
import os

import psycopg
from pydantic import BaseModel

from appkit.jobs import JobContext, Worker

RUNS_SQL = """
create table if not exists public.jobs_test_runs (
    job_id bigint not null, attempt int not null, worker text not null, pid int not null,
    started_at timestamptz not null default clock_timestamp(), finished_at timestamptz
);
"""

QUEUE = os.environ.get("JOBS_TEST_QUEUE", "reliability")
worker = Worker(
    concurrency=int(os.environ.get("JOBS_TEST_CONCURRENCY", "4")),
    lease=float(os.environ.get("JOBS_TEST_LEASE", "2")),
    poll_interval=0.2, maintenance_interval=0.2, shutdown_grace=5,
)
_conn: psycopg.AsyncConnection | None = None


class Task(BaseModel):
    sleep: float = 0.0
    fail: bool = False


async def _db() -> psycopg.AsyncConnection:
    global _conn
    if _conn is None or _conn.closed:
        url = worker.db_url or os.environ["SUPABASE_DB_URL"]
        _conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    return _conn


async def _exec(sql: str, params: tuple[object, ...]) -> None:
    global _conn
    try:
        await (await _db()).execute(sql, params)
    except psycopg.OperationalError:
        _conn = None
        raise


@worker.job(QUEUE, max_attempts=int(os.environ.get("JOBS_TEST_MAX_ATTEMPTS", "5")), backoff=0.2)
async def run(task: Task, ctx: JobContext) -> None:
    await _exec("insert into public.jobs_test_runs (job_id, attempt, worker, pid) values (%s, %s, %s, %s)",
                (ctx.id, ctx.attempt, ctx.worker_id, os.getpid()))
    await asyncio.sleep(task.sleep)
    if task.fail:
        raise RuntimeError(f"task {ctx.id} failed on purpose (attempt {ctx.attempt})")
    await _exec("update public.jobs_test_runs set finished_at = clock_timestamp() "
                "where job_id = %s and attempt = %s and worker = %s", (ctx.id, ctx.attempt, ctx.worker_id))
