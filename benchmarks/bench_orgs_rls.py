"""Benchmark a membership-filtered list under RLS with appkit's helpers vs the same query without RLS.

    python benchmarks/bench_orgs_rls.py [--runs 200] [--write]

A 100,000-row org-scoped table spread over 1,000 organizations; the user is a member of 5 of
them. The query lists the user's 50 newest rows:

  * RLS (tables): as `authenticated` with the user's claims; the policy is
    `org_id = any (array(select appkit.org_ids_with_role('viewer')))` (memberships read from the
    tables; the array form runs the helper once and lets the index on org_id answer);
  * RLS (claim): the same, with the `appkit_orgs` claim in the token (custom access token hook);
  * for comparison, the policy written `org_id in (select appkit.org_ids_with_role('viewer'))`
    (a hashed subplan filter over every row: RLS quals are not turned into joins);
  * baseline: as the table owner (RLS bypassed), the application-side filter
    `where org_id in (select org_id from appkit.memberships where user_id = $1)`.

Each variant runs `EXPLAIN (ANALYZE, FORMAT JSON)` `--runs` times, interleaved, on one
connection after a warm-up; the database time is planning + execution. Targets (issue 15):
RLS <= 5 ms and >= 50 % of the baseline's speed (baseline time / RLS time), in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from appkit.db.bundled import copy_missing  # noqa: E402
from tests.support import start_stack, write_project  # noqa: E402

ORGS = 1_000
ROWS = 100_000
MY_ORGS = 5
LIMIT = 50

SCHEMA = """
create table public.bench_docs (
  id bigint generated always as identity primary key,
  org_id uuid not null references appkit.organizations (id) on delete cascade,
  title text not null,
  created_at timestamptz not null
);
create index bench_docs_org_created on public.bench_docs (org_id, created_at desc);
alter table public.bench_docs enable row level security;
create policy bench_docs_read on public.bench_docs for select to authenticated
  using (org_id = any (array(select appkit.org_ids_with_role('viewer'))));
grant select on public.bench_docs to authenticated;
"""

# the same rows under the `in (select ...)` policy form, for comparison (not index-friendly under RLS)
SCHEMA_IN = """
create table public.bench_docs_in as select * from public.bench_docs;
alter table public.bench_docs_in add primary key (id);
create index bench_docs_in_org_created on public.bench_docs_in (org_id, created_at desc);
alter table public.bench_docs_in enable row level security;
create policy bench_docs_in_read on public.bench_docs_in for select to authenticated
  using (org_id in (select appkit.org_ids_with_role('viewer')));
grant select on public.bench_docs_in to authenticated;
"""

QUERY = f"select id, org_id, title, created_at from public.bench_docs order by created_at desc limit {LIMIT}"
BASELINE = (f"select id, org_id, title, created_at from public.bench_docs "
            f"where org_id in (select m.org_id from appkit.memberships m where m.user_id = %s) "
            f"order by created_at desc limit {LIMIT}")


def seed(conn: psycopg.Connection[Any]) -> tuple[str, list[str]]:
    owner, me = str(uuid.uuid4()), str(uuid.uuid4())
    with conn.transaction():
        for uid in (owner, me):
            conn.execute("insert into auth.users (id, email, aud, role) values (%s, %s, 'authenticated', "
                         "'authenticated')", (uid, f"{uid[:8]}@bench.example"))
        conn.execute(
            "insert into appkit.organizations (name, slug, created_by) "
            "select 'Org ' || i, 'bench-' || i, %s from generate_series(1, %s) i", (owner, ORGS))
        conn.execute("insert into appkit.memberships (org_id, user_id, role) "
                     "select id, %s, 'owner' from appkit.organizations", (owner,))
        mine = [str(r[0]) for r in conn.execute(
            "select id from appkit.organizations order by random() limit %s", (MY_ORGS,)).fetchall()]
        for i, org in enumerate(mine):
            conn.execute("insert into appkit.memberships (org_id, user_id, role) values (%s, %s, %s)",
                         (org, me, ("viewer", "member", "admin", "member", "viewer")[i % 5]))
        conn.execute(SCHEMA)
        conn.execute(
            "insert into public.bench_docs (org_id, title, created_at) "
            "select o.ids[1 + (g %% %s)], 'doc ' || g, now() - make_interval(secs => g) "
            "from generate_series(1, %s) g, (select array_agg(id order by id) ids from appkit.organizations) o",
            (ORGS, ROWS))
    conn.execute(SCHEMA_IN)
    conn.execute("analyze public.bench_docs")
    conn.execute("analyze public.bench_docs_in")
    conn.execute("analyze appkit.memberships")
    conn.execute("analyze appkit.organizations")
    return me, mine


def explain(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...], claims: dict[str, Any] | None
            ) -> tuple[float, int, str]:
    """(planning + execution ms, rows, plan text) of one EXPLAIN ANALYZE."""
    with conn.transaction():
        if claims is not None:
            conn.execute("set local role authenticated")
            conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        row = conn.execute(f"explain (analyze, format json) {sql}", params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    plan = row[0][0]
    total = float(plan["Planning Time"]) + float(plan["Execution Time"])
    return total, int(plan["Plan"]["Actual Rows"]), json.dumps(plan["Plan"], indent=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--write", action="store_true", help="write benchmarks/results/orgs.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-orgs-") as tmp:
        workdir = Path(tmp)
        write_project(workdir)
        copy_missing(workdir / "supabase" / "migrations")
        stack = start_stack(workdir)
        try:
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                t0 = time.perf_counter()
                me, _ = seed(conn)
                seeded = time.perf_counter() - t0
                tables_claims = {"sub": me, "role": "authenticated"}
                token_claims = {**tables_claims, "appkit_orgs": {
                    o: r for o, r in conn.execute(
                        "select org_id::text, role from appkit.memberships where user_id = %s", (me,)).fetchall()}}
                variants = {
                    "RLS, helpers reading memberships": (QUERY, (), tables_claims),
                    "RLS, helpers reading the appkit_orgs claim": (QUERY, (), token_claims),
                    "no RLS (owner), app-side membership filter": (BASELINE, (me,), None),
                    "RLS, policy written `org_id in (select ...)`": (QUERY.replace("bench_docs", "bench_docs_in"),
                                                                      (), tables_claims),
                }
                results: dict[str, list[float]] = {k: [] for k in variants}
                plans: dict[str, str] = {}
                rows: dict[str, int] = {}
                for _ in range(20):  # warm-up
                    for sql, params, claims in variants.values():
                        explain(conn, sql, params, claims)
                for _ in range(args.runs):
                    for name, (sql, params, claims) in variants.items():
                        ms, n, plan = explain(conn, sql, params, claims)
                        results[name].append(ms)
                        rows[name] = n
                        plans[name] = plan
                # the RLS variants return exactly the baseline's rows
                ids = {}
                for name, (sql, params, claims) in variants.items():
                    with conn.transaction():
                        if claims is not None:
                            conn.execute("set local role authenticated")
                            conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
                        ids[name] = [r[0] for r in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]
                assert len({tuple(v) for v in ids.values()}) == 1 and len(next(iter(ids.values()))) == LIMIT
        finally:
            stack.stop()

    base = statistics.median(results["no RLS (owner), app-side membership filter"])
    lines = [
        f"bench_orgs_rls: {ROWS:,} rows over {ORGS:,} orgs, user in {MY_ORGS}, list {LIMIT} newest; "
        f"{args.runs} EXPLAIN ANALYZE runs per variant, interleaved (seeded in {seeded:.1f} s)",
        "",
        "| variant | median ms (plan+exec) | p95 ms | rows | speed vs baseline |",
        "|---|---|---|---|---|",
    ]
    for name, times in results.items():
        med = statistics.median(times)
        p95 = sorted(times)[int(len(times) * 0.95) - 1]
        lines.append(f"| {name} | {med:.3f} | {p95:.3f} | {rows[name]} | {base / med:.0%} |")
    rls = statistics.median(results["RLS, helpers reading memberships"])
    lines += ["", f"target: RLS <= 5 ms ({'met' if rls <= 5 else 'NOT met'}: {rls:.3f} ms) and >= 50 % of the "
              f"baseline's speed ({'met' if base / rls >= 0.5 else 'NOT met'}: {base / rls:.0%})", "",
              "plan (RLS, helpers reading memberships):", "```", plans["RLS, helpers reading memberships"], "```"]
    text = "\n".join(lines)
    print(text)
    if args.write:
        (REPO / "benchmarks" / "results" / "orgs.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
