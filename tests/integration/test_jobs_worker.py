"""The jobs SQL API and the worker against the session stack's Postgres: enqueue, claim, retry,
dead letters, per-queue concurrency, schedules, retention, graceful release."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from appkit.jobs import Cron, JobContext, Worker
from tests.jobs_support import enqueue, job_rows, qname, running, statuses, wait_until
from tests.support import StackHandle

pytestmark = pytest.mark.integration


class Greeting(BaseModel):
    name: str
    times: int = 1


def test_enqueue_from_sql_and_idempotency(stack: StackHandle) -> None:
    q = qname()
    a = enqueue(stack.db_url, q, {"name": "a"}, idempotency_key="k1")
    b = enqueue(stack.db_url, q, {"name": "b"}, idempotency_key="k1")
    c = enqueue(stack.db_url, q, {"name": "c"}, idempotency_key="k2")
    assert a == b and c != a
    rows = job_rows(stack.db_url, q)
    assert [r["payload"] for r in rows] == [{"name": "a"}, {"name": "c"}]
    assert all(r["status"] == "queued" and r["attempts"] == 0 and r["max_attempts"] == 5 for r in rows)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        row = conn.execute("select appkit.enqueue_many(%s, %s::jsonb)",
                           (q, '[{"name": "x"}, {"name": "y"}, {"name": "z"}]')).fetchone()
        assert row is not None
        ids = row[0]
        assert ids == sorted(ids) and len(ids) == 3
        # a finished job frees its idempotency key
        conn.execute("update appkit.jobs set status = 'succeeded', finished_at = now() where id = %s", (a,))
    d = enqueue(stack.db_url, q, {"name": "d"}, idempotency_key="k1")
    assert d not in (a, c)


@pytest.mark.parametrize(("args", "sqlstate"), [
    ("'bad queue!', '{}'::jsonb", "23514"),
    ("'ok', '3'::jsonb", "22023"),
    ("'ok', '{}'::jsonb, max_attempts => 0", "23514"),
    ("'ok', '{}'::jsonb, priority => 100000", "22003"),
    ("'ok', '{}'::jsonb, idempotency_key => ''", "23514"),
])
def test_enqueue_bad_input_from_sql(stack: StackHandle, args: str, sqlstate: str) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(f"select appkit.enqueue({args})")
    assert info.value.sqlstate == sqlstate


def test_trigger_enqueues_in_the_same_transaction(stack: StackHandle) -> None:
    q = qname("signup")
    table = qname("t_signups")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f"create table public.{table} (id serial primary key, email text)")
        conn.execute(f"""
            create function public.{table}_enqueue() returns trigger language plpgsql set search_path = '' as $$
            begin perform appkit.enqueue('{q}', jsonb_build_object('email', new.email)); return new; end $$""")
        conn.execute(f"create trigger t after insert on public.{table} for each row "
                     f"execute function public.{table}_enqueue()")
        with conn.transaction():
            conn.execute(f"insert into public.{table} (email) values ('a@b.c')")
            conn.execute(f"insert into public.{table} (email) values ('d@e.f')")
        with pytest.raises(psycopg.errors.RaiseException), conn.transaction():
            conn.execute(f"insert into public.{table} (email) values ('rolled@back')")
            conn.execute("do $$ begin raise exception 'boom'; end $$")
    assert [r["payload"]["email"] for r in job_rows(stack.db_url, q)] == ["a@b.c", "d@e.f"]


async def test_worker_runs_async_and_sync_handlers(stack: StackHandle) -> None:
    qa, qs = qname("async"), qname("sync")
    seen: list[tuple[str, Any, int]] = []
    threads: set[str] = set()
    worker = Worker(stack.db_url, concurrency=4, poll_interval=0.5)

    @worker.job(qa)
    async def greet(payload: Greeting, ctx: JobContext) -> None:
        seen.append(("async", payload, ctx.attempt))

    @worker.job(qs)
    def greet_sync(payload: Greeting) -> None:
        threads.add(threading.current_thread().name)
        seen.append(("sync", payload, 1))

    for i in range(10):
        enqueue(stack.db_url, qa, {"name": f"a{i}"})
        enqueue(stack.db_url, qs, {"name": f"s{i}", "times": i})
    async with running(worker):
        await wait_until(lambda: len(seen) == 20, what="20 jobs")
        await wait_until(lambda: statuses(stack.db_url, qa) + statuses(stack.db_url, qs) == ["succeeded"] * 20,
                         what="succeeded rows")
    assert {p.name for _, p, _ in seen} == {f"a{i}" for i in range(10)} | {f"s{i}" for i in range(10)}
    assert all(isinstance(p, Greeting) for _, p, _ in seen)
    assert all(t.startswith("appkit-job") for t in threads)
    rows = job_rows(stack.db_url, qa)
    assert all(r["attempts"] == 1 and r["finished_at"] is not None and r["lease_until"] is None for r in rows)


async def test_notify_wakes_an_idle_worker_before_the_poll(stack: StackHandle) -> None:
    q = qname("wake")
    started: list[float] = []
    worker = Worker(stack.db_url, poll_interval=30)

    @worker.job(q)
    async def handle(payload: dict[str, Any]) -> None:
        started.append(time.monotonic())

    async with running(worker):
        await asyncio.sleep(0.5)  # the first poll has happened; the next one is 30 s away
        t0 = time.monotonic()
        enqueue(stack.db_url, q, {})
        await wait_until(lambda: bool(started), timeout=10, what="the handler")
    assert started[0] - t0 < 5


async def test_raise_retries_with_backoff_then_dead(stack: StackHandle) -> None:
    q = qname("flaky")
    calls: list[float] = []
    worker = Worker(stack.db_url, poll_interval=0.1)

    @worker.job(q, max_attempts=3, backoff=0.4)
    async def boom(payload: dict[str, Any]) -> None:
        calls.append(time.monotonic())
        raise RuntimeError(f"kaput #{len(calls)}")

    job = enqueue(stack.db_url, q, {"x": 1})
    async with running(worker):
        await wait_until(lambda: statuses(stack.db_url, q) == ["dead"], what="dead job")
    row = job_rows(stack.db_url, q)[0]
    assert row["id"] == job and row["attempts"] == 3 and len(calls) == 3
    assert row["last_error"].startswith("RuntimeError: kaput #3")
    assert "Traceback" in row["last_error"]
    # backoff: >= half of 0.4 s, then >= half of 0.8 s (jitter)
    assert calls[1] - calls[0] >= 0.2 and calls[2] - calls[1] >= 0.4


async def test_invalid_payload_is_dead_at_once(stack: StackHandle) -> None:
    q = qname("typed")
    calls: list[Greeting] = []
    worker = Worker(stack.db_url, poll_interval=0.1)

    @worker.job(q, max_attempts=5)
    async def greet(payload: Greeting) -> None:
        calls.append(payload)

    enqueue(stack.db_url, q, {"nom": "x"})
    enqueue(stack.db_url, q, {"name": "ok"})
    async with running(worker):
        await wait_until(lambda: sorted(statuses(stack.db_url, q)) == ["dead", "succeeded"], what="outcomes")
    bad = job_rows(stack.db_url, q)[0]
    assert bad["status"] == "dead" and bad["attempts"] == 1
    assert bad["last_error"].startswith("invalid payload for Greeting") and "name" in bad["last_error"]
    assert [c.name for c in calls] == ["ok"]


async def test_queue_concurrency_limit_holds_across_workers(stack: StackHandle) -> None:
    q = qname("limited")
    active = 0
    peak = 0
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into appkit.job_queues (name, concurrency) values (%s, 2)", (q,))

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.15)
        active -= 1

    workers = [Worker(stack.db_url, concurrency=5, poll_interval=0.1) for _ in range(3)]
    for w in workers:
        w.job(q)(handle)
    for i in range(12):
        enqueue(stack.db_url, q, {"i": i})
    async with running(workers[0]), running(workers[1]), running(workers[2]):
        await wait_until(lambda: statuses(stack.db_url, q) == ["succeeded"] * 12, what="all jobs")
    assert peak == 2


async def test_priority_and_delay(stack: StackHandle) -> None:
    q = qname("prio")
    order: list[str] = []
    worker = Worker(stack.db_url, concurrency=1, poll_interval=0.1)

    @worker.job(q)
    async def handle(payload: dict[str, str]) -> None:
        order.append(payload["n"])

    enqueue(stack.db_url, q, {"n": "low"}, priority=-1)
    enqueue(stack.db_url, q, {"n": "normal"})
    enqueue(stack.db_url, q, {"n": "high"}, priority=10)
    enqueue(stack.db_url, q, {"n": "later"}, priority=100, run_at=datetime.now(UTC) + timedelta(seconds=1.5))
    async with running(worker):
        await wait_until(lambda: len(order) == 4, what="4 jobs")
    assert order == ["high", "normal", "low", "later"]


async def test_shutdown_releases_jobs_that_outlive_the_grace(stack: StackHandle) -> None:
    q = qname("slow")
    started = asyncio.Event()
    worker = Worker(stack.db_url, shutdown_grace=0.3)

    @worker.job(q)
    async def slow(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    enqueue(stack.db_url, q, {})
    task = asyncio.create_task(worker.serve())
    await asyncio.wait_for(started.wait(), 10)
    assert statuses(stack.db_url, q) == ["running"]
    worker.stop()
    await asyncio.wait_for(task, 10)
    row = job_rows(stack.db_url, q)[0]
    assert row["status"] == "queued" and row["attempts"] == 0 and row["worker_id"] is None


async def test_graceful_shutdown_lets_short_jobs_finish(stack: StackHandle) -> None:
    q = qname("short")
    started = asyncio.Event()
    worker = Worker(stack.db_url, shutdown_grace=10)

    @worker.job(q)
    async def short(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(0.5)

    enqueue(stack.db_url, q, {})
    task = asyncio.create_task(worker.serve())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert statuses(stack.db_url, q) == ["succeeded"]


async def test_heartbeat_keeps_a_long_job_leased(stack: StackHandle) -> None:
    q = qname("long")
    runs: list[int] = []
    worker = Worker(stack.db_url, lease=1.2, poll_interval=0.1)
    other = Worker(stack.db_url, lease=1.2, poll_interval=0.1)

    @worker.job(q)
    async def long(payload: dict[str, Any], ctx: JobContext) -> None:
        runs.append(ctx.attempt)
        await asyncio.sleep(3.5)  # three leases long

    other.job(q)(long)
    enqueue(stack.db_url, q, {})
    async with running(worker), running(other):
        await wait_until(lambda: statuses(stack.db_url, q) == ["succeeded"], timeout=20, what="success")
    assert runs == [1]  # never re-claimed while the heartbeat renewed the lease


async def test_schedule_fires_once_per_minute_boundary(stack: StackHandle) -> None:
    q = qname("cron")
    name = qname("sched")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into appkit.job_schedules (name, cron, timezone, queue, payload, next_run_at) "
                     "values (%s, '* * * * *', 'Europe/Paris', %s, '{\"k\": 1}', now() - interval '1 hour')",
                     (name, q))
    worker = Worker(stack.db_url, maintenance_interval=0.2)
    worker.job(q)(lambda payload: None)
    async with running(worker):
        await wait_until(lambda: len(job_rows(stack.db_url, q)) >= 1, what="the scheduled job")
        await asyncio.sleep(0.6)
    rows = job_rows(stack.db_url, q)
    # a missed hour fires once, not 60 times (a second job only if a minute boundary passed meanwhile)
    assert 1 <= len(rows) <= 2
    keys = [r["idempotency_key"] for r in rows]
    assert len(set(keys)) == len(keys) and all(k.startswith(f"schedule:{name}:") for k in keys)
    assert rows[0]["payload"] == {"k": 1}
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        nxt = conn.execute("select next_run_at from appkit.job_schedules where name = %s", (name,)).fetchone()
    assert nxt is not None and nxt[0] > datetime.now(UTC) - timedelta(seconds=5)
    assert nxt[0] == Cron.parse("* * * * *").next_after(nxt[0] - timedelta(minutes=1))


def test_schedule_rejects_unknown_time_zone(stack: StackHandle) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute("insert into appkit.job_schedules (name, cron, timezone, queue) "
                     "values ('tzbad', '* * * * *', 'Mars/Olympus', 'q')")
    assert info.value.sqlstate == "22023"


async def test_retention_purges_in_batches(stack: StackHandle) -> None:
    q = qname("purge")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into appkit.job_queues (name, retention) values (%s, '1 hour')", (q,))
        conn.execute("select appkit.enqueue_many(%s, (select jsonb_agg(jsonb_build_object('i', g)) "
                     "from generate_series(1, 25) g))", (q,))
        conn.execute("update appkit.jobs set status = 'succeeded', finished_at = now() - interval '2 hours' "
                     "where queue = %s and (payload->>'i')::int <= 20", (q,))
        conn.execute("update appkit.jobs set status = 'dead', finished_at = now() where queue = %s "
                     "and (payload->>'i')::int = 21", (q,))
        first = conn.execute("select appkit.purge_jobs(null, 8)").fetchone()
        assert first == (8,)
    worker = Worker(stack.db_url, purge_interval=0.2, purge_batch=5, maintenance_interval=0.1)
    worker.job(q)(lambda payload: None)
    async with running(worker, [q]):
        await wait_until(lambda: len(job_rows(stack.db_url, q)) == 5, what="purge")
    left = sorted(r["payload"]["i"] for r in job_rows(stack.db_url, q))
    assert left == [21, 22, 23, 24, 25]


def test_worker_configuration_errors(stack: StackHandle) -> None:
    from appkit.errors import ConfigError

    w = Worker(stack.db_url)
    with pytest.raises(ConfigError, match="no job handlers"):
        asyncio.run(w.serve())
    w.job("a")(lambda payload: None)
    with pytest.raises(ConfigError, match="already has a handler"):
        w.job("a")(lambda payload: None)
    with pytest.raises(ConfigError, match="no handler for queue"):
        asyncio.run(w.serve(["b"]))
    from appkit.errors import ValidationError

    with pytest.raises(ValidationError):
        w.job("bad name!")
    with pytest.raises(ConfigError):
        Worker(stack.db_url, concurrency=0)
    with pytest.raises(ConfigError, match="database URL"):
        import os

        saved = os.environ.pop("SUPABASE_DB_URL", None)
        try:
            nourl = Worker()
            nourl.job("a")(lambda payload: None)
            asyncio.run(nourl.serve())
        finally:
            if saved is not None:
                os.environ["SUPABASE_DB_URL"] = saved


async def test_transaction_pooler_mode_polls_without_listen(stack: StackHandle) -> None:
    q = qname("pooled")
    seen: list[int] = []
    worker = Worker(stack.db_url, transaction_pooler=True, poll_interval=0.2)

    @worker.job(q)
    async def handle(payload: dict[str, int]) -> None:
        seen.append(payload["i"])

    async with running(worker):
        await asyncio.sleep(0.3)
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            listeners = conn.execute("select count(*) from pg_stat_activity where application_name = "
                                     "'appkit-jobs-worker' and query ilike 'listen%%'").fetchone()
        for i in range(5):
            enqueue(stack.db_url, q, {"i": i})
        await wait_until(lambda: sorted(seen) == [0, 1, 2, 3, 4], what="polled jobs")
    assert listeners == (0,)


async def test_worker_vacuums_the_jobs_table_past_the_threshold(stack: StackHandle) -> None:
    q = qname("vac")

    def vacuums() -> int:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            row = conn.execute("select vacuum_count from pg_stat_user_tables where relid = 'appkit.jobs'::regclass"
                               ).fetchone()
        return int(row[0]) if row else 0

    before = vacuums()
    worker = Worker(stack.db_url, vacuum_threshold=1, maintenance_interval=0.2)
    worker.job(q)(lambda payload: None)
    for i in range(20):
        enqueue(stack.db_url, q, {"i": i})
    fed = [20]

    def vacuumed() -> bool:
        # keep dead row versions coming: autovacuum (or another test's worker) may reclaim the
        # first ones before this worker's check, and VACUUM (SKIP_LOCKED) skips while autovacuum runs
        enqueue(stack.db_url, q, {"i": fed[0]})
        fed[0] += 1
        return vacuums() > before

    async with running(worker):
        await wait_until(vacuumed, timeout=60, what="a VACUUM by the worker")


async def test_an_error_message_postgres_cannot_store_does_not_wedge_the_worker(stack: StackHandle) -> None:
    q = qname("nul")
    worker = Worker(stack.db_url, poll_interval=0.1)

    @worker.job(q, max_attempts=1)
    async def boom(payload: dict[str, Any]) -> None:
        if payload.get("bad"):
            raise ValueError("binary\x00junk " + "x" * 20000)

    bad = enqueue(stack.db_url, q, {"bad": True})
    good = enqueue(stack.db_url, q, {})
    async with running(worker):
        await wait_until(lambda: sorted(statuses(stack.db_url, q)) == ["dead", "succeeded"], what="both outcomes")
    rows = {r["id"]: r for r in job_rows(stack.db_url, q)}
    assert rows[bad]["last_error"].startswith("ValueError: binary\\0junk") and len(rows[bad]["last_error"]) <= 8000
    assert rows[good]["status"] == "succeeded"
