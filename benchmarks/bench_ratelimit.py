"""Rate limits: the cost of one ``appkit.rate_limit`` call at the database (target <= 0.2 ms).

    python benchmarks/bench_ratelimit.py [--calls 20000] [--keys 1000]

Starts a local stack on free ports (appkit's migrations applied) and measures on one direct
connection, in the same run:
- in-database: N calls in one server-side loop (a ``DO`` block), so the
  time is the function's own cost (upsert, lock, arithmetic) without a network round trip;
  as the service role (no JWT) and as a signed-in user (claims set, key scoped);
- round trip: N sequential ``select * from appkit.rate_limit(...)`` over TCP (prepared);
- round trip inside one transaction: the same, without a commit (and its WAL flush) per call,
  which is how a policy or RPC pays for it (the request's own commit is shared);
- baselines: the same token-bucket upsert written inline (no function) and ``select 1``;
- before/after: ``appkit.rate_limit`` as sql/0030_ratelimit.sql wrote it (the refill expression
  inline, twice in the upsert), installed from that file as ``public.bench_rate_limit_0030``,
  against the current one (0034: the expression in ``appkit._rate_limit_level``), interleaved.
Prints markdown tables; the ratio column is against the inline upsert, then current vs 0030.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appkit.db.bundled import copy_missing  # noqa: E402
from tests.support import start_stack, write_project  # noqa: E402

INLINE_SETUP = """
create table if not exists public.bench_buckets (key text, capacity int, refill double precision,
  tokens double precision not null, updated_at timestamptz not null, primary key (key, capacity, refill));
"""
INLINE_ONE = """
insert into public.bench_buckets as b values (%(k)s, 1000000, 1000, 1000000 - 1, clock_timestamp())
on conflict (key, capacity, refill) do update
  set tokens = least(b.capacity, b.tokens + greatest(0, extract(epoch from excluded.updated_at - b.updated_at))
                                           * b.refill) - 1,
      updated_at = greatest(b.updated_at, excluded.updated_at)
  where least(b.capacity, b.tokens + greatest(0, extract(epoch from excluded.updated_at - b.updated_at))
                                     * b.refill) >= 1
returning b.tokens
"""
INLINE_MANY = """
do $bench$ declare t double precision; begin
  for g in 1..{n} loop
    insert into public.bench_buckets as b values ('k' || (g % {keys}), 1000000, 1000, 1000000 - 1, clock_timestamp())
    on conflict (key, capacity, refill) do update
      set tokens = least(b.capacity, b.tokens + greatest(0, extract(epoch from excluded.updated_at - b.updated_at))
                                               * b.refill) - 1,
          updated_at = greatest(b.updated_at, excluded.updated_at)
      where least(b.capacity, b.tokens + greatest(0, extract(epoch from excluded.updated_at - b.updated_at))
                                         * b.refill) >= 1
    returning b.tokens into t;
  end loop;
end $bench$
"""
SQL_DIR = REPO / "sql"


def rate_limit_0030() -> str:
    """0030's ``appkit.rate_limit`` definition, renamed ``public.bench_rate_limit_0030``."""
    text = (SQL_DIR / "0030_ratelimit.sql").read_text()
    found = re.search(r"create or replace function appkit\.rate_limit\(key text.*?\n\$\$;", text, re.DOTALL)
    assert found, "appkit.rate_limit not found in sql/0030_ratelimit.sql"
    return (found.group(0).replace("function appkit.rate_limit(", "function public.bench_rate_limit_0030(")
            .replace("rate_limit.capacity", "bench_rate_limit_0030.capacity")
            .replace("rate_limit.refill_per_second", "bench_rate_limit_0030.refill_per_second"))


RL_MANY = """
do $bench$ declare r record; begin
  for g in 1..{n} loop
    r := appkit.rate_limit('k' || (g % {keys}), 1000000, 1000);
  end loop;
end $bench$
"""


def in_db(conn: psycopg.Connection[tuple[object, ...]], statement: str, n: int, keys: int) -> float:
    """Seconds per call of one statement running n calls (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute(statement.format(n=int(n), keys=int(keys)).encode())
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def in_db_as_user(conn: psycopg.Connection[tuple[object, ...]], n: int, keys: int) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute("set local role authenticated")
            conn.execute("select set_config('request.jwt.claims', "
                         "'{\"role\":\"authenticated\",\"sub\":\"6f0d3c5e-0000-4000-8000-000000000001\"}', true)")
            conn.execute(RL_MANY.format(n=int(n), keys=int(keys)).encode())
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def round_trips(conn: psycopg.Connection[tuple[object, ...]], statement: str, n: int, keys: int) -> float:
    """Median seconds per sequential call (autocommit, prepared)."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute(statement, {"k": f"k{i % keys}"}, prepare=True)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def round_trips_in_tx(conn: psycopg.Connection[tuple[object, ...]], statement: str, n: int, keys: int) -> float:
    """Median seconds per sequential call inside one transaction (no commit per call)."""
    with conn.transaction():
        return round_trips(conn, statement, n, keys)


def before_after(conn: psycopg.Connection[tuple[object, ...]], n: int, keys: int,
                 rounds: int = 3) -> list[tuple[str, float, float]]:
    """(measurement, 0030 seconds per call, current seconds per call), the two interleaved per round."""
    old_many = RL_MANY.replace("appkit.rate_limit(", "public.bench_rate_limit_0030(")
    old_one = "select * from public.bench_rate_limit_0030(%(k)s, 1000000, 1000)"
    new_one = "select * from appkit.rate_limit(%(k)s, 1000000, 1000)"
    in_db(conn, old_many, keys, keys)  # warm up (both use the same buckets: same keys, same table)
    db_old, db_new, rt_old, rt_new = [], [], [], []
    for _ in range(rounds):
        db_old.append(in_db(conn, old_many, n, keys))
        db_new.append(in_db(conn, RL_MANY, n, keys))
        rt_old.append(round_trips_in_tx(conn, old_one, n // 4, keys))
        rt_new.append(round_trips_in_tx(conn, new_one, n // 4, keys))
    med = statistics.median
    return [("in-database (service role / no JWT)", med(db_old), med(db_new)),
            ("per round trip inside one transaction (median)", med(rt_old), med(rt_new))]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--keys", type=int, default=1000)
    args = ap.parse_args(argv)
    n, keys = args.calls, args.keys
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_project(workdir)
        copy_missing(workdir / "supabase" / "migrations")
        stack = start_stack(workdir)
        try:
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                conn.execute(INLINE_SETUP)
                conn.execute(rate_limit_0030().encode())
                rl_many = RL_MANY
                # warm up both paths (first calls create the rows)
                in_db(conn, rl_many, keys, keys)
                in_db(conn, INLINE_MANY, keys, keys)
                rows = [
                    ("appkit.rate_limit, in-database (service role / no JWT)", in_db(conn, rl_many, n, keys)),
                    ("appkit.rate_limit, in-database (signed-in user, scoped key)", in_db_as_user(conn, n, keys)),
                    ("baseline: the same upsert inline, in-database", in_db(conn, INLINE_MANY, n, keys)),
                    ("appkit.rate_limit, one call per round trip (median)",
                     round_trips(conn, "select * from appkit.rate_limit(%(k)s, 1000000, 1000)", n // 4, keys)),
                    ("baseline: the same upsert inline, per round trip (median)",
                     round_trips(conn, INLINE_ONE, n // 4, keys)),
                    ("baseline: select 1, per round trip (median)", round_trips(conn, "select 1", n // 4, keys)),
                    ("appkit.rate_limit, per round trip inside one transaction (median)",
                     round_trips_in_tx(conn, "select * from appkit.rate_limit(%(k)s, 1000000, 1000)", n // 4,
                                       keys)),
                    ("baseline: the same upsert inline, per round trip inside one transaction (median)",
                     round_trips_in_tx(conn, INLINE_ONE, n // 4, keys)),
                ]
                versions = before_after(conn, n, keys)
        finally:
            stack.stop()
    inline_db = rows[2][1]
    inline_rt = rows[4][1]
    print(f"{n} calls over {keys} keys\n")
    print("| measurement | ms per call | vs inline upsert |")
    print("|---|---|---|")
    for i, (name, secs) in enumerate(rows):
        base = inline_db if i < 3 else inline_rt if i < 6 else rows[7][1]
        print(f"| {name} | {secs * 1000:.4f} | {secs / base:.2f}x |")
    print("\n| appkit.rate_limit | 0030 (ms per call) | current (ms per call) | current / 0030 |")
    print("|---|---|---|---|")
    for name, old, new in versions:
        print(f"| {name} | {old * 1000:.4f} | {new * 1000:.4f} | {new / old:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
