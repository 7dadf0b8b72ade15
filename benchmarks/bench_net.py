"""pg_net benchmark: 1,000 ``net.http_post`` calls to a local server, and the stack's idle memory.

    python benchmarks/bench_net.py                 # 1,000 calls x 3 rounds, 30 s idle
    python benchmarks/bench_net.py --calls 5000 --rounds 5 --idle 60

Starts its own local stack (embedded Postgres) in a temp dir and a local HTTP server (uvicorn,
one worker, answers 200 ``ok``) in a process of its own.

1. **Throughput** -- per round: ``--calls`` ``net.http_post`` calls queued (a) in one transaction
   (``select net.http_post(...) from generate_series(1, N)``) and (b) one transaction per call
   (autocommit, as webhooks fire); the time from the first call to the last of the N rows in
   ``net._http_response``. **Baseline**, same run, same server: the same N POSTs sent straight
   from Python with httpx set up as the worker (64 in flight over clients of 4 connections) --
   the ratio is what the queue, the worker and the response rows cost on top of the HTTP calls.
2. **Memory** -- the stack process's RSS and the pg_net worker backend's USS: once the stack is
   ready and idle, after the bursts, and after ``--idle`` seconds of idling (target: the stack
   grows by <= 10 MB with the services on).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import multiprocessing
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import free_port, start_stack, write_project  # noqa: E402


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _serve(port: int) -> None:
    import uvicorn

    uvicorn.run(_app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def start_server() -> tuple[str, multiprocessing.Process]:
    """The local server, in a process of its own (no GIL shared with the client under test)."""
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    proc.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}/hook", proc


def wait_rows(conn: psycopg.Connection[Any], first: int, last: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    want = last - first + 1
    while time.monotonic() < deadline:
        row = conn.execute("select count(*) from net._http_response where id between %s and %s", (first, last)).fetchone()
        if row and row[0] >= want:
            return
        time.sleep(0.01)
    raise RuntimeError("responses did not arrive")


def one_transaction(db_url: str, url: str, n: int) -> float:
    with psycopg.connect(db_url, autocommit=True) as conn:
        t0 = time.perf_counter()
        ids = [r[0] for r in conn.execute(
            "select net.http_post(%s, jsonb_build_object('i', i)) from generate_series(1, %s) i", (url, n)).fetchall()]
        wait_rows(conn, min(ids), max(ids))
        return time.perf_counter() - t0


def per_call_transactions(db_url: str, url: str, n: int) -> float:
    with psycopg.connect(db_url, autocommit=True) as conn:
        t0 = time.perf_counter()
        ids = [conn.execute("select net.http_post(%s, jsonb_build_object('i', %s))", (url, i)).fetchone()[0]  # type: ignore[index]
               for i in range(n)]
        wait_rows(conn, min(ids), max(ids))
        return time.perf_counter() - t0


async def direct(url: str, n: int, concurrency: int = 64) -> float:
    """The same POSTs from Python with httpx, set up as the worker sets it up (POOL_SIZE
    connections per client, CONCURRENCY in flight)."""
    from appkit.local.net import POOL_SIZE

    slots = asyncio.Semaphore(concurrency)
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=POOL_SIZE))
               for _ in range(max(concurrency // POOL_SIZE, 1))]

    async def one(i: int) -> None:
        async with slots:
            r = await clients[i % len(clients)].post(url, json={"i": i})
            r.raise_for_status()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    for client in clients:
        await client.aclose()
    return elapsed


def cpu(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes."""
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def worker_pids(stack_pid: int, db_url: str) -> list[int]:
    """The stack process and the pg_net worker's Postgres backend: what sends pg_net's requests."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("select pid from pg_stat_activity where application_name = 'pg_net worker'").fetchone()
    return [stack_pid, int(row[0])] if row else [stack_pid]


def memory(stack_pid: int, db_url: str) -> tuple[float, float]:
    rss = psutil.Process(stack_pid).memory_info().rss / 2**20
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("select pid from pg_stat_activity where application_name = 'pg_net worker'").fetchone()
    uss = psutil.Process(int(row[0])).memory_full_info().uss / 2**20 if row else float("nan")
    return rss, uss


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--idle", type=float, default=30.0)
    args = p.parse_args()
    url, server = start_server()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_project(workdir)
        stack = start_stack(workdir)
        try:
            assert stack.process is not None
            time.sleep(5)
            m0 = memory(stack.process.pid, stack.db_url)
            one, per, base = [], [], []
            cpu_one, cpu_per, cpu_base = [], [], []
            me = [psutil.Process().pid]
            for _ in range(args.rounds):
                c0 = cpu(me)
                base.append(asyncio.run(direct(url, args.calls)))
                cpu_base.append(cpu(me) - c0)
                pids = worker_pids(stack.process.pid, stack.db_url)
                c0 = cpu(pids)
                one.append(one_transaction(stack.db_url, url, args.calls))
                cpu_one.append(cpu(pids) - c0)
                c0 = cpu(pids)
                per.append(per_call_transactions(stack.db_url, url, args.calls))
                cpu_per.append(cpu(pids) - c0)
            m1 = memory(stack.process.pid, stack.db_url)
            time.sleep(args.idle)
            m2 = memory(stack.process.pid, stack.db_url)
        finally:
            stack.stop()
            server.terminate()
    b = statistics.median(base)
    print(f"{args.calls} net.http_post calls to a local server, median of {args.rounds} rounds")
    print(f"  one transaction:       {statistics.median(one):6.3f} s  ({args.calls / statistics.median(one):7.0f}/s)"
          f"  x{statistics.median(one) / b:.2f} of direct httpx")
    print(f"  a transaction each:    {statistics.median(per):6.3f} s  ({args.calls / statistics.median(per):7.0f}/s)"
          f"  x{statistics.median(per) / b:.2f} of direct httpx")
    print(f"  baseline direct httpx: {b:6.3f} s  ({args.calls / b:7.0f}/s)")
    print(f"  all rounds (one txn / per call / direct): {[round(x, 3) for x in one]} / "
          f"{[round(x, 3) for x in per]} / {[round(x, 3) for x in base]}")
    print("CPU seconds per round, median (load-independent): stack process + pg_net worker backend vs the direct client")
    print(f"  one transaction: {statistics.median(cpu_one):.2f} s; a transaction each: {statistics.median(cpu_per):.2f} s "
          f"direct httpx client: {statistics.median(cpu_base):.2f} s")
    print("memory (stack RSS MiB, pg_net worker backend USS MiB)")
    print(f"  idle after start:        {m0[0]:7.1f}  {m0[1]:6.1f}")
    print(f"  after the bursts:        {m1[0]:7.1f}  {m1[1]:6.1f}")
    print(f"  after {args.idle:.0f} s idle:        {m2[0]:7.1f}  {m2[1]:6.1f}")
    print(f"  growth idle->idle:       {m2[0] - m0[0]:+7.1f}  {m2[1] - m0[1]:+6.1f}")


if __name__ == "__main__":
    main()
