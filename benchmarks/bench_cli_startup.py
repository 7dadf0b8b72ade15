"""CLI start-up A/B: another tree of appkit (say, an older commit) against this one, in the same run.

    git archive cb66ad7 src cli | tar -x -C /tmp/old
    python benchmarks/bench_cli_startup.py /tmp/old --db-url postgresql://... [--runs 7]

Runs ``appkit --version``, ``--help``, ``gen --help`` and ``gen models --db-url URL -o FILE``
with ``PYTHONPATH`` pointing at OLD's ``src`` and ``cli`` ("before") and as installed ("after"),
interleaved; prints the median wall and CPU (user+sys of the process) seconds of each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old", type=Path, help="a tree holding src/ and cli/ of the version to compare with")
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {"--version": ["--version"], "--help": ["--help"], "gen --help": ["gen", "--help"],
                "gen models": ["gen", "models", "--db-url", args.db_url, "-o", str(Path(tmp) / "models.py")]}
        envs = {"before": {**os.environ, "PYTHONPATH": f"{args.old / 'src'}{os.pathsep}{args.old / 'cli'}"},
                "after": dict(os.environ)}
        res: dict[tuple[str, str], list[tuple[float, float]]] = {(e, k): [] for e in envs for k in cmds}
        for _ in range(args.runs):
            for key, argv in cmds.items():
                for name, env in envs.items():
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    proc = subprocess.run([sys.executable, "-m", "appkit_cli", *argv], capture_output=True, env=env)
                    wall = time.perf_counter() - t0
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if proc.returncode != 0:
                        raise SystemExit(f"{name}: appkit {key} failed: {proc.stderr.decode()[-500:]}")
                    res[(name, key)].append((wall, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime))
    print("| command | before: wall / CPU | after: wall / CPU | CPU after / before |")
    print("|---|---|---|---|")
    for key in cmds:
        b = [statistics.median(x[i] for x in res[("before", key)]) for i in (0, 1)]
        a = [statistics.median(x[i] for x in res[("after", key)]) for i in (0, 1)]
        print(f"| `appkit {key}` | {b[0]:.2f} / {b[1]:.2f} s | {a[0]:.2f} / {a[1]:.2f} s | {a[1] / b[1]:.2f} |")


if __name__ == "__main__":
    main()
