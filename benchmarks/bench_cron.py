"""pg_cron emulation benchmark: how late a job scheduled every second starts after its slot
(p50/p99/max over a window, missed and doubled slots), and the stack's idle memory before
pg_cron is installed vs after the window with the scheduler running.

Baseline (same run, same stack): a minimal scheduler written for the occasion -- an asyncio
loop that sleeps to each second boundary, opens a connection and runs the same INSERT --
i.e. the floor of "connect and run at the slot" on this machine. The ratio is pg_cron
emulation lag / baseline lag.

    python benchmarks/bench_cron.py [--seconds 60]

Each run's start is the INSERT's ``clock_timestamp()``; its slot is that second, and a
window where every second holds exactly one row proves no run started 1 s or more late.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import StackHandle, start_stack, write_project  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def memory(stack: StackHandle) -> tuple[float, float]:
    """(RSS sum, PSS sum) in MB of the stack's Python process and every Postgres process."""
    assert stack.process is not None and stack.workdir is not None
    pgdata = (stack.workdir / "supabase" / ".appkit" / "pgdata").resolve()
    main = psutil.Process(int((pgdata / "postmaster.pid").read_text().splitlines()[0]))
    rss = pss = 0
    for p in [psutil.Process(stack.process.pid), main, *main.children(recursive=True)]:
        try:
            mi = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += mi.rss
        pss += getattr(mi, "pss", mi.rss)
    return rss / 2**20, pss / 2**20


def lags(stack: StackHandle, table: str, start: float, end: float) -> tuple[list[float], int, int]:
    """(lag of each run in seconds, missed slots, doubled slots) for the slots in [start, end)."""
    with psycopg.connect(stack.db_url) as conn:
        rows = conn.execute(f"select extract(epoch from at)::float8 from public.{table} "
                            "where at >= to_timestamp(%s) and at < to_timestamp(%s)", (start, end)).fetchall()
    ats = [float(r[0]) for r in rows]
    seconds = [int(a) for a in ats]
    slots = range(int(start), int(end))
    missed = sum(1 for s in slots if s not in seconds)
    doubled = sum(1 for s in slots if seconds.count(s) > 1)
    return [a - int(a) for a in ats], missed, doubled


async def baseline(stack: StackHandle, table: str, seconds: int) -> None:
    """Sleep to each second, connect, insert: the floor of a connect-and-run scheduler."""
    end = time.time() + seconds
    while time.time() < end:
        await asyncio.sleep(int(time.time()) + 1 - time.time())
        async with await psycopg.AsyncConnection.connect(stack.db_url, autocommit=True) as conn:
            await conn.execute(f"insert into public.{table} (at) values (clock_timestamp())")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_project(Path(tmp))
        stack = start_stack(Path(tmp))
        try:
            time.sleep(20)  # start-up's pooled connections close after 15 s idle
            idle_before = memory(stack)
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                conn.execute("create table public.cron_bench (at timestamptz not null)")
                conn.execute("create table public.peer_bench (at timestamptz not null)")
                conn.execute("create extension pg_cron")
                conn.execute("select cron.schedule('bench', '1 seconds', "
                             "'insert into public.cron_bench (at) values (clock_timestamp())')")
                # the scheduler notices a new pg_cron within 5 s: the window opens at the first run
                while conn.execute("select count(*) from public.cron_bench").fetchone() == (0,):
                    time.sleep(0.05)
                start = time.time()
            time.sleep(args.seconds + 1)
            end = time.time()
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                conn.execute("select cron.unschedule('bench')")
                conn.execute("select cron.schedule('nightly', '0 3 * * *', 'select 1')")  # an idle scheduler with a job
            ours, missed, doubled = lags(stack, "cron_bench", int(start) + 2, int(end) - 1)
            peer_start = time.time()
            asyncio.run(baseline(stack, "peer_bench", args.seconds))
            peer, peer_missed, peer_doubled = lags(stack, "peer_bench", int(peer_start) + 2, int(time.time()) - 1)
            time.sleep(20)
            idle_after = memory(stack)
            with psycopg.connect(stack.db_url) as conn:
                pids = [int(r[0]) for r in conn.execute(
                    "select pid from pg_stat_activity where application_name = 'pg_cron scheduler'")]
            scheduler = [psutil.Process(p).memory_full_info() for p in pids]
        finally:
            stack.stop()
    ms = [x * 1000 for x in ours]
    pms = [x * 1000 for x in peer]
    print(f"window: {len(ours)} runs of a '1 seconds' job; baseline {len(peer)} runs\n")
    print("| | p50 | p99 | max | missed slots | doubled slots |")
    print("|---|---|---|---|---|---|")
    print(f"| pg_cron emulation: slot -> command start | {pct(ms, 50):.1f} ms | {pct(ms, 99):.1f} ms | {max(ms):.1f} ms "
          f"| {missed} | {doubled} |")
    print(f"| baseline: sleep to slot, connect, insert | {pct(pms, 50):.1f} ms | {pct(pms, 99):.1f} ms "
          f"| {max(pms):.1f} ms | {peer_missed} | {peer_doubled} |")
    print(f"| ratio (emulation / baseline) | {pct(ms, 50) / pct(pms, 50):.2f}x | {pct(ms, 99) / pct(pms, 99):.2f}x "
          f"| | | |")
    print()
    print("| idle memory (Python + every Postgres process) | RSS sum | PSS sum |")
    print("|---|---|---|")
    print(f"| before `create extension pg_cron` | {idle_before[0]:.1f} MB | {idle_before[1]:.1f} MB |")
    print(f"| after the window, one daily job scheduled, 20 s idle | {idle_after[0]:.1f} MB | {idle_after[1]:.1f} MB |")
    print(f"| growth | {idle_after[0] - idle_before[0]:+.1f} MB | {idle_after[1] - idle_before[1]:+.1f} MB |")
    print(f"| of which the scheduler's {len(scheduler)} Postgres connections | "
          f"{sum(m.rss for m in scheduler) / 2**20:.1f} MB | {sum(getattr(m, 'pss', m.rss) for m in scheduler) / 2**20:.1f} MB |")


if __name__ == "__main__":
    main()
