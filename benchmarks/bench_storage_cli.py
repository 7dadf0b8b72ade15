"""Storage CLI benchmark: ``appkit storage cp -r`` against the real Supabase CLI, same stack, same run.

    python benchmarks/bench_storage_cli.py                    # 1,000 small files and one 1 GiB file
    python benchmarks/bench_storage_cli.py --files 200 --big-mb 128 --jobs 1 4 --rounds 2   # quick run

Starts its own local stack in a temp dir (the Supabase CLI's ``--local`` talks to ``[api] port``
of the cwd project's config.toml, so both tools hit the same server), generates the files in
that temp dir (checking free disk space first) and deletes everything afterwards. For each
``-j`` value both tools copy the same tree to their own prefix, alternating which goes
first (``--rounds`` runs each, the median reported); then each tool with no ``-j`` (its own
default: 1 for the Supabase CLI, 4 for appkit); then the big file. Reports wall time (process
start included), the ratio Supabase CLI time / appkit time (> 1: appkit is faster), and CPU
seconds (median): the client's (user+sys of the command and its children) and the stack
server's (the ``appkit dev`` process; Postgres not included) — on a shared machine wall time
swings with the disk's fsync latency, CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import start_stack, supabase_cli, write_project  # noqa: E402

GiB = 1024**3


def cpu_of(pid: int) -> float:
    """user+sys seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(args: list[str], cwd: Path, server_pid: int) -> tuple[float, float, float]:
    """(wall, client CPU, server CPU) seconds of one command."""
    r0, s0 = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_of(server_pid)
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "XDG_CACHE_HOME": str(cwd / ".cache")})
    elapsed = time.perf_counter() - t0
    r1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_of(server_pid)
    if proc.returncode != 0:
        raise SystemExit(f"{Path(args[0]).name} {' '.join(args[1:4])} failed: {proc.stderr.strip()[-500:]}")
    client = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return elapsed, client, s1 - s0


def appkit(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "appkit_cli", "storage", *args, "--workdir", str(work)]


def supabase(*args: str) -> list[str]:
    return [supabase_cli(), "storage", *args, "--local", "--experimental"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tool per case (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-storage-cli-") as tmp:
        work = Path(tmp)
        need = (1 + 2 * args.rounds) * args.big_mb * 1024**2 + 512 * 1024**2  # the file, stored copies, slack
        free = shutil.disk_usage(work).free
        if free < need:
            raise SystemExit(f"not enough disk space in {work}: {free / GiB:.1f} GiB free, need {need / GiB:.1f}")
        write_project(work, extra_config='[storage]\nfile_size_limit = "2GiB"\n')
        stack = start_stack(work)
        assert stack.process is not None
        server = stack.process.pid
        try:
            subprocess.run(appkit(work, "buckets", "create", "bench"), check=True, capture_output=True)
            small = work / "small"
            for i in range(args.files):
                sub = small / f"d{i % 10}"
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"f{i:04d}.txt").write_bytes(os.urandom(512 + (i * 37) % 7680))
            small_bytes = sum(p.stat().st_size for p in small.rglob("*") if p.is_file())
            rows: list[tuple[str, list[float], list[float]]] = []

            def race(label: str, ak: Callable[[int], list[str]], sb: Callable[[int], list[str]]) -> None:
                runs: dict[str, list[tuple[float, float, float]]] = {"appkit": [], "supabase": []}
                for r in range(args.rounds):  # alternate which tool goes first
                    order = [("appkit", ak), ("supabase", sb)]
                    for name, cmd in order if r % 2 == 0 else order[::-1]:
                        runs[name].append(timed(cmd(r), work, server))
                medians = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in runs.items()}
                rows.append((label, medians["appkit"], medians["supabase"]))
                for name, v in runs.items():
                    print(f"{label}: {name} wall/client CPU/server CPU "
                          + ", ".join(f"{w:.2f}/{c:.2f}/{s:.2f}" for w, c, s in v), flush=True)

            for jobs in args.jobs:
                race(f"{args.files:,} small files ({small_bytes / 1024**2:.1f} MB), -j {jobs}",
                     lambda r, j=jobs: appkit(work, "cp", "-r", str(small), f"ss:///bench/ak-{j}-{r}", "-j", str(j)),
                     lambda r, j=jobs: supabase("cp", "-r", str(small), f"ss:///bench/sb-{j}-{r}", "-j", str(j)))
            race(f"{args.files:,} small files, each tool's default -j (appkit 4, Supabase CLI 1)",
                 lambda r: appkit(work, "cp", "-r", str(small), f"ss:///bench/ak-default-{r}"),
                 lambda r: supabase("cp", "-r", str(small), f"ss:///bench/sb-default-{r}"))
            shutil.rmtree(small)
            big = work / "big.bin"
            with open(big, "wb") as f:
                block = os.urandom(4 * 1024**2)
                for _ in range(args.big_mb // 4):
                    f.write(block)
            race(f"one {args.big_mb:,} MB file",
                 lambda r: appkit(work, "cp", str(big), f"ss:///bench/ak-big-{r}.bin"),
                 lambda r: supabase("cp", str(big), f"ss:///bench/sb-big-{r}.bin"))
            big.unlink()  # the stored copies go with the temp dir
        finally:
            stack.stop()
    print("| copy | appkit storage cp | supabase storage cp | ratio (supabase / appkit) "
          "| client CPU appkit / supabase | server CPU appkit / supabase |")
    print("|---|---|---|---|---|---|")
    for label, ak, sb in rows:
        print(f"| {label} | {ak[0]:.2f} s | {sb[0]:.2f} s | {sb[0] / ak[0]:.2f} "
              f"| {ak[1]:.2f} / {sb[1]:.2f} s | {ak[2]:.2f} / {sb[2]:.2f} s |")


if __name__ == "__main__":
    main()
