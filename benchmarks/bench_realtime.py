"""Realtime benchmark: commit-to-callback latency of postgres_changes with 1, 100 and 500
subscribers, and broadcast fan-out throughput, against a stack this script starts.

Baseline (same run, same machine): Postgres' own LISTEN/NOTIFY, commit to notification,
through a trigger on the same table -- the floor any change feed on this database pays.

    python benchmarks/bench_realtime.py [--rows 200] [--quick]

Subscribers for 1 and 100 use the official ``realtime.AsyncRealtimeClient``; 100 and 500
also run as raw websockets speaking the same protocol. The official client costs about
1 ms of CPU per received message (pydantic validation of every frame plus debug
f-strings that are formatted even when logging is off), so 100 of them in one Python
process saturate a core at ~1000 messages/s: that run commits every 300 ms to measure
latency rather than the client's backlog. Every subscriber is a distinct authenticated
user (its own JWT claims), so RLS is evaluated per subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import psycopg
import websockets
from realtime import AsyncRealtimeClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import StackHandle, start_stack, write_project  # noqa: E402

TABLE = "rt_bench"


def token(stack: StackHandle) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated",
                       "exp": now + 3600, "iat": now}, stack.jwt_secret, algorithm="HS256")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def setup(stack: StackHandle) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as db:
        db.execute(f"drop table if exists public.{TABLE}")
        db.execute(f"create table public.{TABLE} (id bigint generated always as identity primary key, "
                   "body text, at timestamptz default now())")
        db.execute(f"alter table public.{TABLE} enable row level security")
        db.execute(f"create policy readable on public.{TABLE} for select to anon, authenticated using (true)")
        db.execute(f"grant select on public.{TABLE} to anon, authenticated")
        db.execute(f"alter publication supabase_realtime add table public.{TABLE}")
        db.execute("create or replace function public.rt_bench_notify() returns trigger language plpgsql as $$ "
                   "begin perform pg_notify('rt_bench', new.id::text); return null; end $$")


async def insert_rows(stack: StackHandle, n: int, interval: float, commits: dict[int, float]) -> None:
    """Insert from a separate process (its commit times are not delayed by this process's
    event loop, busy with the subscribers); times are wall-clock, shared by both."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--insert-worker", stack.db_url, str(n), str(interval),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    commits.update({int(k): v for k, v in json.loads(out).items()})


def insert_worker(db_url: str, n: int, interval: float) -> None:
    commits: dict[int, float] = {}
    with psycopg.connect(db_url, autocommit=True) as db:
        for _ in range(n):
            # the clock starts when the (autocommit) INSERT is sent: a NOTIFY can reach its
            # listener before COMMIT's reply reaches us, so "after commit returned" would
            # make the baseline negative; this is conservative for every row alike
            started = time.time()
            row = db.execute(f"insert into public.{TABLE} (body) values ('x') returning id").fetchone()
            assert row is not None
            commits[int(row[0])] = started
            time.sleep(interval)
    print(json.dumps(commits))


async def baseline_notify(stack: StackHandle, rows: int, interval: float) -> list[float]:
    with psycopg.connect(stack.db_url, autocommit=True) as db:
        db.execute(f"create trigger rt_bench_notify after insert on public.{TABLE} "
                   "for each row execute function public.rt_bench_notify()")
    commits: dict[int, float] = {}
    received: dict[int, float] = {}
    async with await psycopg.AsyncConnection.connect(stack.db_url, autocommit=True) as listener:
        await listener.execute("listen rt_bench")

        async def listen() -> None:
            async for n in listener.notifies():
                received[int(n.payload)] = time.time()
                if len(received) >= rows:
                    return

        task = asyncio.create_task(listen())
        await insert_rows(stack, rows, interval, commits)
        await asyncio.wait_for(task, 30)
    with psycopg.connect(stack.db_url, autocommit=True) as db:
        db.execute(f"drop trigger rt_bench_notify on public.{TABLE}")
    return [(received[i] - commits[i]) * 1000 for i in commits if i in received]


async def official_subscribers(stack: StackHandle, n: int, rows: int, interval: float,
                               distinct_users: bool = True) -> tuple[list[float], int]:
    url = stack.api_url.replace("http", "ws") + "/realtime/v1"
    clients: list[AsyncRealtimeClient] = []
    latencies: list[float] = []
    commits: dict[int, float] = {}
    pending: list[tuple[int, int, float]] = []  # (client, row id, received at)
    seen: set[tuple[int, int]] = set()
    delivered = 0
    for k in range(n):
        c = AsyncRealtimeClient(url, stack.anon_key)
        await c.connect()
        if distinct_users:
            await c.set_auth(token(stack))
        ch = c.channel(f"bench-{uuid.uuid4().hex[:6]}")

        def on_change(payload: Any, k: int = k) -> None:
            row_id = int(payload["data"]["record"]["id"])
            pending.append((k, row_id, time.time()))
            seen.add((k, row_id))

        ch.on_postgres_changes("INSERT", on_change, table=TABLE, schema="public")
        await ch.subscribe()
        clients.append(c)
    await insert_rows(stack, rows, interval, commits)
    deadline = time.monotonic() + 30
    while len(seen) < n * len(commits) and time.monotonic() < deadline:  # every (client, row) once
        await asyncio.sleep(0.05)
    missing = {(k, i) for k in range(n) for i in commits} - seen
    if missing or len(pending) != len(seen):
        print(f"{n} official subscribers: {len(missing)} (client, row) pairs missing, e.g. {sorted(missing)[:5]};"
              f" {len(pending) - len(seen)} duplicates", file=sys.stderr)
    for _, row_id, at in pending:
        if row_id in commits:
            latencies.append((at - commits[row_id]) * 1000)
            delivered += 1
    for c in clients:
        await c.close()
    return latencies, delivered


async def official_subscribers_spread(stack: StackHandle, n: int, rows: int, interval: float,
                                      procs: int = 4) -> tuple[list[float], int]:
    """n official clients spread over ``procs`` processes (subscribers are separate
    machines in real life; one Python process would serialize their per-message cost)."""
    workers = []
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    for count in per:
        args = json.dumps({"api_url": stack.api_url, "anon_key": stack.anon_key, "jwt_secret": stack.jwt_secret,
                           "count": count, "rows": rows})
        proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--subscriber-worker", args,
                                                    stdout=asyncio.subprocess.PIPE)
        workers.append(proc)
    for proc in workers:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        assert line.strip() == b"ready", line
    commits: dict[int, float] = {}
    await insert_rows(stack, rows, interval, commits)
    received: list[tuple[int, float]] = []
    for proc in workers:
        out, _ = await proc.communicate()
        received += [(int(i), float(t)) for i, t in json.loads(out)]
    lat = [(at - commits[i]) * 1000 for i, at in received if i in commits]
    return lat, len(lat)


def subscriber_worker(raw_args: str) -> None:
    args = json.loads(raw_args)
    stack = StackHandle(api_url=args["api_url"], anon_key=args["anon_key"], service_role_key="",
                        db_url="", jwt_secret=args["jwt_secret"])
    count, rows = int(args["count"]), int(args["rows"])

    async def run() -> None:
        url = stack.api_url.replace("http", "ws") + "/realtime/v1"
        received: list[tuple[int, float]] = []
        clients = []
        for _ in range(count):
            c = AsyncRealtimeClient(url, stack.anon_key)
            await c.connect()
            await c.set_auth(token(stack))
            ch = c.channel(f"bench-{uuid.uuid4().hex[:6]}")
            ch.on_postgres_changes(
                "INSERT", lambda p: received.append((int(p["data"]["record"]["id"]), time.time())),
                table=TABLE, schema="public")
            await ch.subscribe()
            clients.append(c)
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while len(received) < count * rows and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for c in clients:
            await c.close()
        print(json.dumps(received), flush=True)

    asyncio.run(run())


async def raw_subscribers(stack: StackHandle, n: int, rows: int, interval: float) -> tuple[list[float], int]:
    url = stack.api_url.replace("http", "ws") + f"/realtime/v1/websocket?apikey={stack.anon_key}&vsn=1.0.0"
    received: list[tuple[int, float]] = []
    ready = 0
    sockets: list[Any] = []
    tasks: list[asyncio.Task[None]] = []

    async def run(ws: Any) -> None:
        nonlocal ready
        async for raw in ws:
            at = time.time()
            msg = json.loads(raw)
            if msg["event"] == "postgres_changes":
                received.append((int(msg["payload"]["data"]["record"]["id"]), at))
            elif msg["event"] == "phx_reply" and msg["ref"] == "1":
                ready += 1

    for i in range(n):
        ws = await websockets.connect(url, max_size=None)
        join = {"topic": f"realtime:bench-raw-{i}", "event": "phx_join", "ref": "1", "join_ref": "1",
                "payload": {"config": {"postgres_changes": [{"event": "INSERT", "schema": "public",
                                                              "table": TABLE}]},
                            "access_token": token(stack)}}
        await ws.send(json.dumps(join))
        sockets.append(ws)
        tasks.append(asyncio.create_task(run(ws)))
        if i % 50 == 49:
            await asyncio.sleep(0.1)  # stay under the joins-per-second limit
    while ready < n:
        await asyncio.sleep(0.05)
    commits: dict[int, float] = {}
    await insert_rows(stack, rows, interval, commits)
    deadline = time.monotonic() + 60
    while len(received) < n * rows and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for ws in sockets:
        await ws.close()
    for t in tasks:
        t.cancel()
    lat = [(at - commits[i]) * 1000 for i, at in received if i in commits]
    return lat, len(lat)


async def broadcast_fanout(stack: StackHandle, n: int, messages: int) -> tuple[float, float]:
    """One sender, n subscribers on one topic: (messages/s sent, deliveries/s)."""
    url = stack.api_url.replace("http", "ws") + f"/realtime/v1/websocket?apikey={stack.anon_key}&vsn=1.0.0"
    topic = f"realtime:fanout-{uuid.uuid4().hex[:6]}"
    counts = [0] * n
    done = asyncio.Event()
    total = 0
    sockets: list[Any] = []
    tasks: list[asyncio.Task[None]] = []

    async def run(i: int, ws: Any) -> None:
        nonlocal total
        async for raw in ws:
            if '"event":"broadcast"' in raw:
                counts[i] += 1
                total += 1
                if total >= n * messages:
                    done.set()

    join = {"topic": topic, "event": "phx_join", "ref": "1", "join_ref": "1", "payload": {"config": {}}}
    for i in range(n):
        ws = await websockets.connect(url, max_size=None)
        await ws.send(json.dumps(join))
        sockets.append(ws)
        tasks.append(asyncio.create_task(run(i, ws)))
        if i % 50 == 49:
            await asyncio.sleep(0.1)
    sender = await websockets.connect(url)
    await sender.send(json.dumps(join))
    await sender.recv()
    await asyncio.sleep(0.5)
    t0 = time.time()
    for k in range(messages):
        await sender.send(json.dumps({"topic": topic, "event": "broadcast", "ref": str(k + 2), "join_ref": "1",
                                      "payload": {"type": "broadcast", "event": "tick", "payload": {"k": k}}}))
    sent = time.time() - t0
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.time() - t0
    await sender.close()
    for ws in sockets:
        await ws.close()
    for t in tasks:
        t.cancel()
    del sent
    return messages / elapsed, n * messages / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=100.0)
    parser.add_argument("--quick", action="store_true", help="fewer rows, skip 500")
    args = parser.parse_args()
    rows = 40 if args.quick else args.rows
    interval = args.interval_ms / 1000
    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    write_project(workdir, extra_config="\n[realtime]\nmax_events_per_second = 100000\n")
    stack = start_stack(workdir)
    results: list[tuple[str, str, float, float, float, int, int]] = []
    try:
        setup(stack)
        base = await baseline_notify(stack, rows, interval)
        b50 = statistics.median(base)
        results.append(("baseline: LISTEN/NOTIFY", "1", b50, pct(base, 99), 1.0, len(base), rows))
        # (subscribers, client, rows, interval between commits)
        runs = [(1, "official", rows, interval), (100, "official", max(rows // 3, 20), interval * 3),
                (100, "official-spread", max(rows // 2, 20), interval), (100, "raw", max(rows // 2, 20), interval)]
        if not args.quick:
            runs.append((500, "raw", max(rows // 5, 20), interval * 10))
        for n, kind, count, gap in runs:
            if kind == "official":
                lat, got = await official_subscribers(stack, n, count, gap)
                label = "official client, one process"
            elif kind == "official-spread":
                lat, got = await official_subscribers_spread(stack, n, count, gap)
                label = "official client, 4 processes"
            else:
                lat, got = await raw_subscribers(stack, n, count, gap)
                label = "raw websockets"
            p50 = statistics.median(lat) if lat else float("nan")
            results.append((f"postgres_changes ({label}, a commit every {gap * 1000:.0f} ms)", str(n), p50,
                            pct(lat, 99), p50 / b50, got, n * count))
        fan_msgs, fan_deliveries = await broadcast_fanout(stack, 100, 200 if args.quick else 1000)
    finally:
        stack.stop()
    print("| measurement | subscribers | p50 ms | p99 ms | p50 / baseline | delivered |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, p50, p99, ratio, got, expected in results:
        print(f"| {name} | {n} | {p50:.1f} | {p99:.1f} | {ratio:.1f}x | {got}/{expected} |")
    print()
    print("| broadcast fan-out | subscribers | messages/s in | deliveries/s out |")
    print("|---|---:|---:|---:|")
    print(f"| one sender, one topic | 100 | {fan_msgs:.0f} | {fan_deliveries:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--insert-worker":
        insert_worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--subscriber-worker":
        subscriber_worker(sys.argv[2])
    else:
        asyncio.run(main())
