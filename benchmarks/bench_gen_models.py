"""``appkit gen models`` on a 200-table schema (target: <= 2 s), and ``appkit db advisors`` beside
the real ``supabase db advisors`` on the same database.

    python benchmarks/bench_gen_models.py [--tables 200] [--runs 5]

Starts a local stack in a temp dir, creates a scratch database there holding ``--tables``
tables (12 columns each: identity key, enum, enum array, numeric, jsonb, timestamps, uuid,
a domain, a foreign key to the previous table, a generated column), a view per 10 tables
and a function per 4 tables, then times, as a user runs them (a subprocess each, Python
start-up included, median of ``--runs``; wall and CPU seconds — CPU is what the load on a
shared machine distorts least):

- ``appkit gen models --db-url URL -o FILE`` (the target);
- the baseline in the same run: ``appkit gen --help`` (the CLI's own start-up, no database),
  and ``appkit --version`` / ``appkit --help`` (the CLI's lightest paths);
- ``generate_models()`` in-process (introspection + rendering, no start-up);
- ``appkit db advisors --level info -o json`` and the Supabase CLI's
  ``supabase db advisors --level info -o json`` on the same database (peer ratio).

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appkit.db.codegen import generate_models  # noqa: E402
from tests.support import start_stack, supabase_cli, write_project  # noqa: E402


def schema_sql(tables: int) -> str:
    out = [
        "create type public.status as enum ('new', 'active', 'done', 'archived');",
        "create domain public.email as text check (value like '%@%');",
    ]
    for i in range(tables):
        ref = f", parent_id bigint references public.t{i - 1:03d} (id)" if i else ""
        out.append(
            f"create table public.t{i:03d} (id bigint generated always as identity primary key,"
            f" name text not null, status public.status not null default 'new', history public.status[],"
            f" amount numeric(12, 2), data jsonb not null default '{{}}', created_at timestamptz not null default now(),"
            f" updated_at timestamp, owner uuid default gen_random_uuid(), contact public.email,"
            f" name_len int generated always as (length(name)) stored{ref});"
        )
        if i % 10 == 9:
            out.append(f"create view public.v{i:03d} as select id, name, status from public.t{i:03d};")
        if i % 4 == 3:
            out.append(f"create function public.f{i:03d}(p_id bigint, p_status public.status default 'new')"
                       f" returns setof public.t{i:03d} language sql stable as"
                       f" 'select * from public.t{i:03d} where id = p_id and status = p_status';")
    return "\n".join(out)


def timed(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU (user+sys) seconds of ``runs`` runs of ``cmd``."""
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        if proc.returncode not in (0,):
            raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_project(work)
        stack = start_stack(work)
        try:
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                conn.execute("create database bench_gen")
            url = stack.db_url.rsplit("/", 1)[0] + "/bench_gen"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(schema_sql(args.tables).encode())
            out = work / "models.py"
            appkit = [sys.executable, "-m", "appkit_cli"]
            gen = timed([*appkit, "gen", "models", "--db-url", url, "-o", str(out)], args.runs)
            startup = timed([*appkit, "gen", "--help"], args.runs)
            version = timed([*appkit, "--version"], args.runs)
            top_help = timed([*appkit, "--help"], args.runs)
            lib = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                source = generate_models(url)
                lib.append(time.perf_counter() - t0)
            assert source == out.read_text()
            classes = source.count("(Model, table=")
            ours = timed([*appkit, "db", "advisors", "--db-url", url, "--level", "info", "-o", "json"], args.runs)
            theirs = timed([supabase_cli(), "db", "advisors", "--db-url", f"{url}?sslmode=disable", "--level", "info",
                            "-o", "json"], args.runs)
        finally:
            stack.stop()
    lines = source.count("\n")
    print(f"schema: {args.tables} tables, {args.tables // 10} views, {args.tables // 4} functions;"
          f" generated {classes} models, {lines} lines; median of {args.runs} runs\n")
    print("| measurement | wall s | CPU s | ratio (wall) |")
    print("|---|---:|---:|---:|")
    print(f"| `appkit gen models -o FILE` (subprocess) | {gen[0]:.2f} | {gen[1]:.2f} |"
          f" {gen[0] / startup[0]:.2f}x CLI start-up |")
    print(f"| baseline: `appkit gen --help` (CLI start-up) | {startup[0]:.2f} | {startup[1]:.2f} | 1.00x |")
    print(f"| `appkit --version` | {version[0]:.2f} | {version[1]:.2f} | |")
    print(f"| `appkit --help` | {top_help[0]:.2f} | {top_help[1]:.2f} | |")
    print(f"| `generate_models()` in-process | {statistics.median(lib):.2f} | | |")
    print(f"| `appkit db advisors --level info -o json` | {ours[0]:.2f} | {ours[1]:.2f} |"
          f" {ours[0] / theirs[0]:.2f}x supabase |")
    print(f"| peer: `supabase db advisors --level info -o json` | {theirs[0]:.2f} | {theirs[1]:.2f} | 1.00x |")

if __name__ == "__main__":
    main()
