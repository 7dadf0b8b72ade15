"""Jobs benchmark: appkit's worker side by side with PgQueuer and procrastinate, same database, same run.

    pip install pgqueuer procrastinate asyncpg     # peers: into your venv only, not pyproject's deps
    python benchmarks/bench_jobs.py                        # 20,000 jobs each + latency
    python benchmarks/bench_jobs.py --retention-jobs 1000000   # + table size over 1M processed jobs
    python benchmarks/bench_jobs.py --only appkit,pgqueuer-psycopg --jobs 5000

Starts its own local stack (embedded Postgres 18) in a temp dir; every system gets a schema
of its own in that one database and runs in this process (one event loop, like a worker).

1. **Throughput** — enqueue ``--jobs`` no-op jobs in batches of ``--enqueue-batch`` (one
   statement each: ``appkit.enqueue_many``, PgQueuer's list ``enqueue``, procrastinate's
   ``batch_defer_async``), then process them all with a fresh worker: claim + run the no-op
   handler + mark done. Reported: enqueue rate, processing rate, and end-to-end rate
   (jobs / (enqueue time + processing time)). Tuning (the same in-flight budget for all):
   appkit ``concurrency = --concurrency``, ``batch_size = --batch``; PgQueuer
   ``batch_size = --batch``, ``max_concurrent_tasks = --concurrency``, drain mode;
   procrastinate ``concurrency = --procrastinate-concurrency`` (it fetches one job per
   query; 1, 5, 10 and 20 measured within noise of each other here), ``wait=False`` (exit when empty).
   Also reported: CPU time per job, of this process (enqueuer + worker, ``time.process_time``)
   and of the Postgres server (postmaster + exited and live backends, from /proc; NaN for a
   server on another machine), which a shared machine's load distorts less than the rates.
2. **Latency** — an idle worker waits on LISTEN; ``--latency-samples`` jobs are enqueued one
   at a time, 20 ms apart; enqueue -> handler start, p50/p95/p99 (perf_counter, one process).
3. **Retention** (``--retention-jobs``) — appkit only: the queue's retention set to 0 s,
   purged every second by the worker while a producer keeps ~20,000 jobs queued; the jobs
   table's total size (heap + indexes + TOAST) is sampled every 10% of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appkit.db.bundled import copy_missing  # noqa: E402
from appkit.jobs import Worker  # noqa: E402
from tests.support import start_stack, write_project  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _proc_cpu(pid: int, *, children: bool) -> float:
    """CPU seconds of a process (plus its reaped children's, with ``children``) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # exited meanwhile
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / _TICK


def server_cpu(postmaster: int) -> float:
    """CPU seconds used so far by a Postgres server: postmaster + exited backends + live backends."""
    total = _proc_cpu(postmaster, children=True)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == postmaster:
                total += (int(stat[11]) + int(stat[12])) / _TICK
    return total


async def postmaster_pid(url: str) -> int | None:
    """The server's postmaster pid (a backend's parent), or None when it is not on this machine."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute("select pg_backend_pid()")).fetchone()
    assert row is not None
    try:
        return int(Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


# -- appkit -------------------------------------------------------------------------------------

async def appkit_throughput(url: str, n: int, args: argparse.Namespace, *,
                            synchronous_commit: bool = False) -> dict[str, float]:
    queue = f"bench_{int(time.time() * 1000)}"
    payloads = json.dumps([{}] * args.enqueue_batch)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for start in range(0, n, args.enqueue_batch):
            size = min(args.enqueue_batch, n - start)
            body = payloads if size == args.enqueue_batch else json.dumps([{}] * size)
            await conn.execute("select appkit.enqueue_many(%s, %s::jsonb)", (queue, body))
        t_enqueue = time.perf_counter() - t0
    done = 0
    worker = Worker(url, concurrency=args.concurrency, batch_size=args.batch, schedules=False,
                    purge_interval=3600, synchronous_commit=synchronous_commit)
    finished = asyncio.Event()

    @worker.job(queue)
    async def noop(payload: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        if done == n:
            finished.set()

    t1 = time.perf_counter()
    task = asyncio.create_task(worker.serve())
    await finished.wait()
    worker.stop()  # writes the last batch of completions, then returns
    await task
    t_process = time.perf_counter() - t1
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("select count(*) from appkit.jobs where queue = %s and status = 'succeeded'",
                                 (queue,))
        row = await cur.fetchone()
        assert row is not None and row[0] == n, f"only {row} of {n} jobs succeeded"
    return {"enqueue_s": t_enqueue, "process_s": t_process}


async def appkit_latency(url: str, samples: int) -> list[float]:
    queue = f"lat_{int(time.time() * 1000)}"
    started: dict[int, float] = {}
    worker = Worker(url, concurrency=10, schedules=False, poll_interval=5.0)

    @worker.job(queue)
    async def handler(payload: dict[str, Any]) -> None:
        started[payload["i"]] = time.perf_counter()

    task = asyncio.create_task(worker.serve())
    await asyncio.sleep(1.0)
    sent: dict[int, float] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for i in range(samples):
            sent[i] = time.perf_counter()
            await conn.execute("select appkit.enqueue(%s, %s::jsonb)", (queue, json.dumps({"i": i})))
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    worker.stop()
    await task
    return [(started[i] - sent[i]) * 1000 for i in range(samples) if i in started]


async def appkit_retention(url: str, total: int, args: argparse.Namespace) -> list[tuple[int, int]]:
    queue = f"ret_{int(time.time() * 1000)}"
    done = 0
    sizes: list[tuple[int, int]] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("insert into appkit.job_queues (name, retention) values (%s, interval '0')", (queue,))
        worker = Worker(url, concurrency=args.concurrency, batch_size=args.batch, schedules=False,
                        purge_interval=1.0, purge_batch=20000)

        @worker.job(queue)
        async def noop(payload: dict[str, Any]) -> None:
            nonlocal done
            done += 1

        task = asyncio.create_task(worker.serve())
        enqueued = 0
        chunk = json.dumps([{}] * 5000)
        step = max(total // 10, 1)
        next_sample = 0
        while done < total:
            if enqueued < total and enqueued - done < 20000:
                await conn.execute("select appkit.enqueue_many(%s, %s::jsonb)", (queue, chunk))
                enqueued += 5000
            else:
                await asyncio.sleep(0.05)
            if done >= next_sample:
                cur = await conn.execute("select pg_total_relation_size('appkit.jobs')")
                row = await cur.fetchone()
                assert row is not None
                sizes.append((done, int(row[0])))
                print(f"    retention: {done:>9,} processed, appkit.jobs {row[0] / 1e6:8.1f} MB", flush=True)
                next_sample += step
        worker.stop()
        await task
        cur = await conn.execute("select pg_total_relation_size('appkit.jobs')")
        row = await cur.fetchone()
        assert row is not None
        sizes.append((done, int(row[0])))
    return sizes


# -- PgQueuer -----------------------------------------------------------------------------------

async def pgqueuer_connect(url: str, driver: str) -> Any:
    if driver == "asyncpg":
        import asyncpg
        from pgqueuer.db import AsyncpgDriver

        return AsyncpgDriver(await asyncpg.connect(url))
    from pgqueuer.db import PsycopgDriver

    return PsycopgDriver(await psycopg.AsyncConnection.connect(url, autocommit=True))


async def pgqueuer_install(url: str) -> None:
    from pgqueuer.queries import Queries

    driver = await pgqueuer_connect(url, "psycopg")
    queries = Queries(driver)
    with contextlib.suppress(Exception):  # not installed yet
        await queries.uninstall()
    await queries.install()


async def pgqueuer_throughput(url: str, n: int, args: argparse.Namespace, driver: str) -> dict[str, float]:
    from datetime import timedelta

    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    entrypoint = f"bench_{driver}_{int(time.time() * 1000)}"
    d = await pgqueuer_connect(url, driver)
    queries = Queries(d)
    t0 = time.perf_counter()
    for start in range(0, n, args.enqueue_batch):
        size = min(args.enqueue_batch, n - start)
        await queries.enqueue([entrypoint] * size, [None] * size, [0] * size)
    t_enqueue = time.perf_counter() - t0
    done = 0
    qm = QueueManager(Queries(await pgqueuer_connect(url, driver)))

    @qm.entrypoint(entrypoint)
    async def noop(job: Any) -> None:
        nonlocal done
        done += 1

    t1 = time.perf_counter()
    await qm.run(batch_size=args.batch, max_concurrent_tasks=max(args.concurrency, 2 * args.batch),
                 mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1),
                 log_aggregation_interval=timedelta(0))
    t_process = time.perf_counter() - t1
    assert done == n, f"PgQueuer ran {done} of {n} jobs"
    return {"enqueue_s": t_enqueue, "process_s": t_process}


async def pgqueuer_latency(url: str, samples: int, driver: str) -> list[float]:
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    entrypoint = f"lat_{driver}_{int(time.time() * 1000)}"
    started: dict[int, float] = {}
    qm = QueueManager(Queries(await pgqueuer_connect(url, driver)))

    @qm.entrypoint(entrypoint)
    async def handler(job: Any) -> None:
        started[int(job.payload.decode())] = time.perf_counter()

    task = asyncio.create_task(qm.run(batch_size=10))
    await asyncio.sleep(1.0)
    producer = Queries(await pgqueuer_connect(url, driver))
    sent: dict[int, float] = {}
    for i in range(samples):
        sent[i] = time.perf_counter()
        await producer.enqueue(entrypoint, str(i).encode())
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    qm.shutdown.set()
    await asyncio.wait_for(task, 30)
    return [(started[i] - sent[i]) * 1000 for i in range(samples) if i in started]


# -- procrastinate ------------------------------------------------------------------------------

def procrastinate_app(url: str) -> Any:
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))


async def procrastinate_install(url: str) -> None:
    app = procrastinate_app(url)
    async with app.open_async():
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute("select to_regclass('public.procrastinate_jobs')")
            row = await cur.fetchone()
        if row is None or row[0] is None:
            await app.schema_manager.apply_schema_async()


async def procrastinate_throughput(url: str, n: int, args: argparse.Namespace) -> dict[str, float]:
    app = procrastinate_app(url)
    queue = f"bench_{int(time.time() * 1000)}"
    done = 0

    @app.task(name=f"noop_{queue}", queue=queue)
    async def noop() -> None:
        nonlocal done
        done += 1

    async with app.open_async():
        t0 = time.perf_counter()
        for start in range(0, n, args.enqueue_batch):
            size = min(args.enqueue_batch, n - start)
            await noop.batch_defer_async(*([{}] * size))
        t_enqueue = time.perf_counter() - t0
        t1 = time.perf_counter()
        await app.run_worker_async(queues=[queue], concurrency=args.procrastinate_concurrency, wait=False,
                                   install_signal_handlers=False, fetch_job_polling_interval=0.5)
        t_process = time.perf_counter() - t1
    assert done == n, f"procrastinate ran {done} of {n} jobs"
    return {"enqueue_s": t_enqueue, "process_s": t_process}


async def procrastinate_latency(url: str, samples: int) -> list[float]:
    app = procrastinate_app(url)
    queue = f"lat_{int(time.time() * 1000)}"
    started: dict[int, float] = {}

    @app.task(name=f"lat_{queue}", queue=queue)
    async def handler(i: int) -> None:
        started[i] = time.perf_counter()

    async with app.open_async():
        task = asyncio.create_task(app.run_worker_async(queues=[queue], concurrency=10,
                                                        install_signal_handlers=False))
        await asyncio.sleep(1.0)
        sent: dict[int, float] = {}
        for i in range(samples):
            sent[i] = time.perf_counter()
            await handler.defer_async(i=i)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return [(started[i] - sent[i]) * 1000 for i in range(samples) if i in started]


# -- driver -------------------------------------------------------------------------------------

SYSTEMS = ["appkit", "appkit-synccommit", "pgqueuer-asyncpg", "pgqueuer-psycopg", "procrastinate"]


async def run(url: str, args: argparse.Namespace) -> None:
    only = [s for s in SYSTEMS if not args.only or s in args.only.split(",")]
    if any(s.startswith("pgqueuer") for s in only):
        await pgqueuer_install(url)
    if "procrastinate" in only:
        await procrastinate_install(url)
    throughput: dict[str, list[dict[str, float]]] = {s: [] for s in only}
    runners: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {
        "appkit": lambda: appkit_throughput(url, args.jobs, args),
        "appkit-synccommit": lambda: appkit_throughput(url, args.jobs, args, synchronous_commit=True),
        "pgqueuer-asyncpg": lambda: pgqueuer_throughput(url, args.jobs, args, "asyncpg"),
        "pgqueuer-psycopg": lambda: pgqueuer_throughput(url, args.jobs, args, "psycopg"),
        "procrastinate": lambda: procrastinate_throughput(url, args.procrastinate_jobs or args.jobs, args),
    }
    postmaster = await postmaster_pid(url)
    count = {name: (args.procrastinate_jobs or args.jobs) if name == "procrastinate" else args.jobs for name in only}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for r in range(args.rounds):
            order = only if r % 2 == 0 else list(reversed(only))
            for name in order:
                await conn.execute("checkpoint")
                cpu0 = time.process_time()
                srv0 = server_cpu(postmaster) if postmaster else 0.0
                result = await runners[name]()
                result["client_cpu_s"] = time.process_time() - cpu0
                await asyncio.sleep(0.5)  # the run's backends exit and are reaped (their CPU moves to the postmaster)
                result["server_cpu_s"] = server_cpu(postmaster) - srv0 if postmaster else float("nan")
                throughput[name].append(result)
                rate = count[name] / (result["enqueue_s"] + result["process_s"])
                us = 1e6 / count[name]
                print(f"  round {r + 1} {name:18} enqueue {result['enqueue_s']:6.2f} s, process "
                      f"{result['process_s']:6.2f} s -> {rate:8,.0f} jobs/s end to end; CPU per job: "
                      f"worker {result['client_cpu_s'] * us:5.0f} us + server {result['server_cpu_s'] * us:5.0f} us",
                      flush=True)

    print(f"\n### Throughput: {args.jobs:,} no-op jobs (median of {args.rounds} round(s))\n")
    print("| system | enqueue (jobs/s) | claim+run+complete (jobs/s) | end to end (jobs/s) | vs PgQueuer (best driver) "
          "| CPU per job, worker + server (us) |")
    print("|---|---|---|---|---|---|")
    best_peer = max((statistics.median(count[s] / (x["enqueue_s"] + x["process_s"]) for x in throughput[s])
                     for s in only if s.startswith("pgqueuer")), default=None)
    for name in only:
        n = count[name]
        enq = statistics.median(n / x["enqueue_s"] for x in throughput[name])
        proc = statistics.median(n / x["process_s"] for x in throughput[name])
        e2e = statistics.median(n / (x["enqueue_s"] + x["process_s"]) for x in throughput[name])
        ratio = f"{e2e / best_peer:.2f}x" if best_peer else ""
        label = name if n == args.jobs else f"{name} ({n:,} jobs)"
        client = statistics.median(x["client_cpu_s"] for x in throughput[name]) * 1e6 / n
        server = statistics.median(x["server_cpu_s"] for x in throughput[name]) * 1e6 / n
        print(f"| {label} | {enq:,.0f} | {proc:,.0f} | {e2e:,.0f} | {ratio} | {client:,.0f} + {server:,.0f} "
              f"= {client + server:,.0f} |")

    if args.latency_samples:
        print(f"\n### Enqueue -> handler start, idle worker ({args.latency_samples} jobs, 20 ms apart)\n")
        print("| system | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | received |")
        print("|---|---|---|---|---|---|")
        lat_runners: dict[str, Callable[[], Awaitable[list[float]]]] = {
            "appkit": lambda: appkit_latency(url, args.latency_samples),
            "appkit-synccommit": lambda: appkit_latency(url, args.latency_samples),
            "pgqueuer-asyncpg": lambda: pgqueuer_latency(url, args.latency_samples, "asyncpg"),
            "pgqueuer-psycopg": lambda: pgqueuer_latency(url, args.latency_samples, "psycopg"),
            "procrastinate": lambda: procrastinate_latency(url, args.latency_samples),
        }
        for name in only:
            if name == "appkit-synccommit":  # same wake-up path as appkit
                continue
            lat = await lat_runners[name]()
            print(f"| {name} | {pct(lat, 0.5):.2f} | {pct(lat, 0.95):.2f} | {pct(lat, 0.99):.2f} | {max(lat):.2f} "
                  f"| {len(lat)}/{args.latency_samples} |", flush=True)

    if args.retention_jobs and "appkit" in only:
        print(f"\n### appkit.jobs size over {args.retention_jobs:,} processed jobs (retention 0 s, purge every 1 s)\n")
        sizes = await appkit_retention(url, args.retention_jobs, args)
        print("\n| processed | appkit.jobs total size (MB) |")
        print("|---|---|")
        for done, size in sizes:
            print(f"| {done:,} | {size / 1e6:.1f} |")
        later = [s for d, s in sizes if d >= args.retention_jobs // 10]
        if later:
            print(f"\nafter the first 10%: min {min(later) / 1e6:.1f} MB, max {max(later) / 1e6:.1f} MB "
                  f"(max/min {max(later) / min(later):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100, help="claim batch size (appkit, PgQueuer)")
    parser.add_argument("--concurrency", type=int, default=200, help="jobs in flight per worker (appkit, PgQueuer)")
    parser.add_argument("--procrastinate-concurrency", type=int, default=10)
    parser.add_argument("--procrastinate-jobs", type=int, default=0,
                        help="jobs for procrastinate (default: --jobs; it runs ~100 jobs/s here)")
    parser.add_argument("--enqueue-batch", type=int, default=1000, help="jobs per enqueue statement")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--retention-jobs", type=int, default=0)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--db-url", default=None, help="use this Postgres instead of starting a stack")
    args = parser.parse_args()
    if args.db_url:
        asyncio.run(run(args.db_url, args))
        return
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        workdir = Path(tmp)
        write_project(workdir)
        copy_missing(workdir / "supabase" / "migrations")
        handle = start_stack(workdir)
        try:
            print(f"stack up: {handle.db_url}", flush=True)
            asyncio.run(run(handle.db_url, args))
        finally:
            handle.stop()


if __name__ == "__main__":
    main()
