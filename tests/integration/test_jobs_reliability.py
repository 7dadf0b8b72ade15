"""Jobs under failure, with real worker processes (``appkit jobs work tests.jobs_worker_app:worker``):
``kill -9`` with jobs in flight, handler errors and bad payloads, a Postgres restart (on a stack of
the test's own), two workers sharing one schedule, and SIGTERM's graceful shutdown."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appkit.db.bundled import copy_missing
from tests.jobs_support import job_rows, qname
from tests.jobs_worker_app import RUNS_SQL
from tests.support import REPO, StackHandle, start_stack, write_project

pytestmark = pytest.mark.integration
LEASE = 2.0


class Workers:
    """Worker subprocesses started by a test; whatever is left is stopped at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, db_url: str, queue: str, *, concurrency: int = 4, max_attempts: int = 5) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 - lives as long as the process
        env = {**os.environ, "JOBS_TEST_QUEUE": queue, "JOBS_TEST_CONCURRENCY": str(concurrency),
               "JOBS_TEST_LEASE": str(LEASE), "JOBS_TEST_MAX_ATTEMPTS": str(max_attempts), "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "appkit_cli", "jobs", "work", "tests.jobs_worker_app:worker",
                                 "--db-url", db_url, "--log-format", "json"],
                                cwd=REPO, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        self.procs.append(proc)
        return proc

    def log(self, i: int) -> str:
        return (self.tmp / f"worker-{i}.log").read_text(errors="replace")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture()
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    yield w
    w.stop()


@pytest.fixture(scope="module")
def runs_table(stack: StackHandle) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(RUNS_SQL)


def runs(db_url: str, job_ids: list[int]) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute("select job_id, attempt, worker, pid, started_at, finished_at from public.jobs_test_runs "
                           "where job_id = any(%s) order by started_at", (job_ids,))
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def enqueue_many(db_url: str, queue: str, payloads: str) -> list[int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("select appkit.enqueue_many(%s, %s::jsonb)", (queue, payloads)).fetchone()
    assert row is not None
    return list(row[0])


def wait_for(check: Any, *, timeout: float = 60, what: str = "condition", procs: list[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def all_status(db_url: str, queue: str, status: str, n: int) -> bool:
    rows = job_rows(db_url, queue)
    return len(rows) == n and all(r["status"] == status for r in rows)


def test_kill_9_loses_nothing_and_never_overlaps_a_valid_lease(stack: StackHandle, runs_table: None,
                                                               workers: Workers) -> None:
    q = qname("kill9")
    # 12 s of work for one worker: more than a second worker process takes to start on a loaded
    # machine (8 s seen), so the victim still has jobs when the survivor joins
    n = 90
    ids = enqueue_many(stack.db_url, q, "[" + ",".join(['{"sleep": 0.8}'] * n) + "]")
    victim = workers.start(stack.db_url, q, concurrency=6)
    wait_for(lambda: len([r for r in runs(stack.db_url, ids) if r["pid"] == victim.pid and r["finished_at"] is None]) >= 4,
             what="jobs in flight on the first worker")
    survivor = workers.start(stack.db_url, q, concurrency=6)
    wait_for(lambda: any(r["pid"] == survivor.pid for r in runs(stack.db_url, ids)), what="the second worker")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        killed_at = conn.execute("select clock_timestamp()").fetchone()[0]  # type: ignore[index]
    in_flight = [r for r in runs(stack.db_url, ids) if r["pid"] == victim.pid and r["finished_at"] is None]
    assert in_flight, "the victim had no job in flight when it was killed"
    wait_for(lambda: all_status(stack.db_url, q, "succeeded", n), timeout=90, what="every job to succeed")

    every = runs(stack.db_url, ids)
    finished = [r for r in every if r["finished_at"] is not None]
    assert {r["job_id"] for r in finished} == set(ids), "a job was lost"
    by_job: dict[int, list[dict[str, Any]]] = {}
    for r in every:
        by_job.setdefault(r["job_id"], []).append(r)
    for job_id, rs in by_job.items():
        # at least once: a job the victim ran but had not yet recorded as done runs again, once
        assert len([r for r in rs if r["pid"] == survivor.pid]) <= 1, f"job {job_id} ran twice on one worker: {rs}"
        for a, b in itertools.pairwise(rs):
            end = a["finished_at"] or killed_at
            assert b["started_at"] >= end, f"job {job_id} ran on two workers at once: {rs}"
            if a["pid"] == victim.pid:  # re-claimed from the dead worker: only once its lease ran out
                assert b["started_at"] >= killed_at + timedelta(seconds=LEASE * 0.6), rs
    reclaimed = {r["job_id"] for r in in_flight}
    rows = {r["id"]: r for r in job_rows(stack.db_url, q)}
    assert all(rows[j]["attempts"] == 2 for j in reclaimed)


def test_raise_retries_with_backoff_until_dead_and_bad_payload_is_dead_at_once(
        stack: StackHandle, runs_table: None, workers: Workers) -> None:
    q = qname("failing")
    failing, invalid, fine = enqueue_many(stack.db_url, q, '[{"fail": true}, {"sleep": "long"}, {"sleep": 0}]')
    workers.start(stack.db_url, q, max_attempts=3)
    wait_for(lambda: sorted(r["status"] for r in job_rows(stack.db_url, q)) == ["dead", "dead", "succeeded"],
             what="final states")
    rows = {r["id"]: r for r in job_rows(stack.db_url, q)}
    assert rows[failing]["attempts"] == 3
    assert rows[failing]["last_error"].startswith(f"RuntimeError: task {failing} failed on purpose (attempt 3)")
    assert rows[invalid]["attempts"] == 1 and rows[invalid]["last_error"].startswith("invalid payload for Task")
    assert "sleep" in rows[invalid]["last_error"]
    attempts = [r for r in runs(stack.db_url, [failing])]
    assert [r["attempt"] for r in attempts] == [1, 2, 3]
    gaps = [(b["started_at"] - a["started_at"]).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # backoff 0.2 s then 0.4 s, with jitter down to half
    assert runs(stack.db_url, [invalid]) == []  # the handler never saw the bad payload
    assert rows[fine]["status"] == "succeeded"


def test_sigterm_finishes_in_flight_jobs_then_exits(stack: StackHandle, runs_table: None, workers: Workers) -> None:
    q = qname("term")
    ids = enqueue_many(stack.db_url, q, '[{"sleep": 1.0}, {"sleep": 1.0}]')
    proc = workers.start(stack.db_url, q)
    wait_for(lambda: len(runs(stack.db_url, ids)) == 2, what="both jobs started")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert all_status(stack.db_url, q, "succeeded", 2), job_rows(stack.db_url, q)
    assert "stopped" in workers.log(0)


def test_two_workers_one_schedule_one_job_per_firing(stack: StackHandle, runs_table: None,
                                                     workers: Workers) -> None:
    q = qname("sched")
    name = qname("every")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into appkit.job_schedules (name, cron, queue, payload, next_run_at) "
                     "values (%s, '0 0 1 1 *', %s, '{}', now() + interval '1 second')", (name, q))
    workers.start(stack.db_url, q)
    workers.start(stack.db_url, q)
    firings = 6
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for i in range(firings):
            wait_for(lambda i=i: len(job_rows(stack.db_url, q)) == i + 1, what=f"firing {i + 1}")
            # make the schedule due again at a distinct past second (a firing a worker missed)
            conn.execute("update appkit.job_schedules set next_run_at = date_trunc('second', now()) "
                         "- make_interval(secs => %s) where name = %s", (100 - i, name))
    time.sleep(1.5)
    rows = job_rows(stack.db_url, q)
    assert len(rows) == firings + 1, [r["idempotency_key"] for r in rows]
    keys = [r["idempotency_key"] for r in rows]
    assert len(set(keys)) == len(keys)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackHandle, Path]]:
    workdir = tmp_path_factory.mktemp("jobsstack")
    write_project(workdir)
    copy_missing(workdir / "supabase" / "migrations")
    handle = start_stack(workdir)
    try:
        yield handle, workdir
    finally:
        handle.stop()


def test_worker_reconnects_after_postgres_restart(own_stack: tuple[StackHandle, Path], workers: Workers) -> None:
    handle, workdir = own_stack
    with psycopg.connect(handle.db_url, autocommit=True) as conn:
        conn.execute(RUNS_SQL)
    q = qname("restart")
    n = 40
    ids = enqueue_many(handle.db_url, q, "[" + ",".join(['{"sleep": 0.1}'] * n) + "]")
    proc = workers.start(handle.db_url, q, concurrency=2)
    wait_for(lambda: len([r for r in runs(handle.db_url, ids) if r["finished_at"]]) >= 6, what="progress")
    handle.stop()  # stops the stack and its embedded Postgres; the worker keeps running
    assert proc.poll() is None
    restarted = start_stack(workdir)
    handle.process = restarted.process  # the fixture stops the new process
    wait_for(lambda: all_status(handle.db_url, q, "succeeded", n), timeout=120, what="every job after the restart")
    assert proc.poll() is None, workers.log(0)[-3000:]
    finished = [r for r in runs(handle.db_url, ids) if r["finished_at"]]
    assert {r["job_id"] for r in finished} == set(ids)
    assert "reconnected" in workers.log(0)
