"""Local stack start-up and idle memory.

    python benchmarks/bench_startup.py [--runs 3]

Measures, on this machine, as a user sees it (``appkit dev`` in a subprocess until the
stack reports ready, Python start-up included):
- cold start: empty data dir -> ready, with 5 migrations and a seed applied;
- warm start: existing data dir -> ready;
- idle memory of the stack (the Python process + every Postgres process), as RSS sum
  and as PSS sum (proportional set size: shared pages counted once), twice: 3 s after
  ready (the connections start-up used are still pooled) and at rest, once the pools have
  closed their unused connections (after 2 x POOL_MAX_IDLE + 5 s);
and, as the baseline in the same run, the bare Postgres floor: ``initdb`` + ``pg_ctl
start`` of the same embedded server (cold), ``pg_ctl start`` alone (warm), and a bare
idle Postgres's memory. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appkit.local.context import POOL_MAX_IDLE  # noqa: E402
from appkit.local.postgres import EmbeddedPostgres  # noqa: E402
from tests.support import free_port, start_stack, write_project  # noqa: E402

MIGRATIONS = [
    "create table public.profiles (id uuid primary key references auth.users on delete cascade, name text);",
    "alter table public.profiles enable row level security;\n"
    "create policy p on public.profiles for select using ((select auth.uid()) = id);",
    "create table public.notes (id bigint generated always as identity primary key, owner uuid default auth.uid(),"
    " body text not null, created_at timestamptz default now());",
    "create index on public.notes (owner, created_at);",
    "alter publication supabase_realtime add table public.notes;",
]


def postmaster(pgdata: Path) -> list[psutil.Process]:
    pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    main = psutil.Process(pid)
    return [main, *main.children(recursive=True)]


def tree_memory(pid: int, pgdata: Path) -> tuple[float, float]:
    """(RSS sum, PSS sum) in MB of ``pid`` and its postgres server's processes."""
    return memory([psutil.Process(pid), *postmaster(pgdata)])


def memory(procs: list[psutil.Process]) -> tuple[float, float]:
    rss = pss = 0
    for p in procs:
        try:
            mi = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += mi.rss
        pss += getattr(mi, "pss", mi.rss)
    return rss / 2**20, pss / 2**20



def template_dirs() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("appkit-pg-template-*/*"))


def bench_stack(runs: int, *, first: bool = False) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cold": [], "warm": [], "rss": [], "pss": [], "rss_rest": [], "pss_rest": []}
    for _ in range(runs):
        if first:
            for t in template_dirs():
                shutil.rmtree(t, ignore_errors=True)
        wd = Path(tempfile.mkdtemp(prefix="appkit-bench-"))
        try:
            write_project(wd)
            for i, sql in enumerate(MIGRATIONS):
                (wd / "supabase" / "migrations" / f"2024010100000{i}_m{i}.sql").write_text(sql)
            (wd / "supabase" / "seed.sql").write_text("insert into auth.users (id) values (gen_random_uuid());")
            t0 = time.perf_counter()
            h = start_stack(wd)
            out["cold"].append(time.perf_counter() - t0)
            time.sleep(3)
            assert h.process is not None
            pgdata = wd / "supabase" / ".appkit" / "pgdata"
            rss, pss = tree_memory(h.process.pid, pgdata)
            out["rss"].append(rss)
            out["pss"].append(pss)
            if not first:
                time.sleep(2 * POOL_MAX_IDLE + 5 - 3)
                rss, pss = tree_memory(h.process.pid, pgdata)
                out["rss_rest"].append(rss)
                out["pss_rest"].append(pss)
            h.stop()
            t0 = time.perf_counter()
            h = start_stack(wd)
            out["warm"].append(time.perf_counter() - t0)
            h.stop()
        finally:
            shutil.rmtree(wd, ignore_errors=True)
    return out


def bench_bare_postgres(runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cold": [], "warm": [], "rss": [], "pss": []}
    for _ in range(runs):
        wd = Path(tempfile.mkdtemp(prefix="appkit-bench-pg-"))
        try:
            pg = EmbeddedPostgres(wd / "data" / "pgdata", free_port())
            pg.pgdata.parent.mkdir(parents=True)
            t0 = time.perf_counter()
            pg._prepare()
            pg._initdb(pg.datadir, pg.socket_dir)
            pg.start()
            out["cold"].append(time.perf_counter() - t0)
            time.sleep(3)
            rss, pss = memory(postmaster(pg.datadir))
            out["rss"].append(rss)
            out["pss"].append(pss)
            pg.stop()
            t0 = time.perf_counter()
            pg.start()
            out["warm"].append(time.perf_counter() - t0)
            pg.stop()
        finally:
            pg.remove()
            shutil.rmtree(wd, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--first", action="store_true",
                    help="also measure a first-ever start (deletes the machine's initdb template first)")
    args = ap.parse_args()
    # as installed (pip byte-compiles what it installs): the editable source gets its
    # bytecode written once here, even where PYTHONDONTWRITEBYTECODE is set (as on the
    # development machine, where every start would otherwise recompile ~50 modules, 0.25 s)
    compileall.compile_dir(REPO / "src", quiet=1)
    compileall.compile_dir(REPO / "cli", quiet=1)
    base = bench_bare_postgres(args.runs)
    stack = bench_stack(args.runs)
    med = statistics.median
    print(f"| metric (median of {args.runs}) | appkit stack | bare Postgres (baseline) | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| cold start, empty data dir -> ready, 5 migrations + seed (s) | {med(stack['cold']):.2f} | {med(base['cold']):.2f} | "
          f"{med(stack['cold']) / med(base['cold']):.2f}x | <= 3 s |")
    if args.first:
        first = bench_stack(args.runs, first=True)
        print(f"| first-ever cold start, no initdb template yet (s) | {med(first['cold']):.2f} | "
              f"{med(base['cold']):.2f} | {med(first['cold']) / med(base['cold']):.2f}x | |")
    print(f"| warm start (s) | {med(stack['warm']):.2f} | {med(base['warm']):.2f} | "
          f"{med(stack['warm']) / med(base['warm']):.2f}x | <= 1.5 s |")
    for key, label, target in (("rss_rest", "idle memory at rest, RSS sum (MB)", "<= 150 MB"),
                               ("pss_rest", "idle memory at rest, PSS sum (MB)", ""),
                               ("rss", "memory 3 s after ready, RSS sum (MB)", ""),
                               ("pss", "memory 3 s after ready, PSS sum (MB)", "")):
        print(f"| {label} | {med(stack[key]):.0f} | {med(base[key[:3]]):.0f} | "
              f"{med(stack[key]) / med(base[key[:3]]):.2f}x | {target} |")


if __name__ == "__main__":
    main()
