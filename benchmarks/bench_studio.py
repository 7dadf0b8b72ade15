"""Studio benchmark: server time of every page on a stack with a 100,000-row table, 10,000 users and
100,000 jobs (target: <= 200 ms each on this machine).

    python benchmarks/bench_studio.py                      # full size
    python benchmarks/bench_studio.py --rows 10000 --users 1000 --jobs 10000 --rounds 5   # quick run

Starts its own local stack in a temp dir, seeds it (benchmarks/studio_seed.py), and serves the studio
(``create_app`` under uvicorn, as ``appkit studio`` does) in a separate process, so the measuring client
does not share its interpreter. Each page is fetched ``--rounds`` times, pages interleaved round by
round after a warm-up. Server time is measured inside the studio process (a timing middleware of this
script: request start to last response byte, with the process CPU time spent); the client's wall-clock
is printed beside it. Baseline measured in the same run: a static asset (``/static/studio.css``: the
studio's guard and routing with no page work), reported as a ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from studio_seed import seed  # noqa: E402

from appkit.db.bundled import copy_missing  # noqa: E402
from tests.support import free_port, start_stack, write_project  # noqa: E402

TARGET_MS = 200.0
# The studio as ``appkit studio`` serves it (create_app under uvicorn on loopback), wrapped in a timing
# middleware that is part of this benchmark only: it reports each request's server time (first byte of
# the request to the last of the response) and the process CPU time spent on it, in response headers.
SERVE = """
import os, sys, time, pathlib
import uvicorn
from appkit.studio import StudioTarget, create_app

app = create_app(StudioTarget(api_url=os.environ["B_URL"], service_role_key=os.environ["B_KEY"],
                              db_url=os.environ["B_DB"], anon_key=os.environ["B_ANON"],
                              jwt_secret=os.environ["B_JWT"] or None, workdir=pathlib.Path(os.environ["B_WORKDIR"]),
                              local=True))

async def timed(scope, receive, send):
    if scope["type"] != "http":
        return await app(scope, receive, send)
    t0, c0 = time.perf_counter(), time.process_time()
    body = []
    async def capture(message):
        if message["type"] == "http.response.start":
            body.append(message)
            return
        if message["type"] == "http.response.body" and not message.get("more_body"):
            start = body.pop()
            start["headers"] = list(start["headers"]) + [
                (b"x-bench-server-ms", str((time.perf_counter() - t0) * 1000).encode()),
                (b"x-bench-cpu-ms", str((time.process_time() - c0) * 1000).encode())]
            await send(start)
        elif body:
            await send(body.pop())
        await send(message)
    await app(scope, receive, capture)

uvicorn.run(timed, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the studio exited")
        try:
            if httpx.get(url + "/static/studio.css", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the studio did not start")


def _link(client: httpx.Client, path: str, pattern: str) -> str | None:
    match = re.search(pattern, client.get(path).text)
    return match.group(1).replace("&amp;", "&") if match else None


def pages(client: httpx.Client, user_id: str, org_id: str, bucket: str, job_id: int) -> dict[str, str]:
    grid = "/tables/public/bench_items"
    out = {
        "overview": "/",
        "tables": "/tables",
        "grid (100k rows)": grid,
        "grid sorted by created_at (index)": f"{grid}?order=created_at.desc",
        "grid sorted by amount (no index)": f"{grid}?order=amount.desc",
        "grid filtered title=eq": f"{grid}?title=eq.item%2099999",
        "grid as a user (RLS)": f"{grid}?as={user_id}",
        "grid as anon": f"{grid}?as=anon",
        "users": "/users",
        "users page 100 (offset)": "/users?page=100",
        "users search": "/users?q=00042",
        "user": f"/users/{user_id}",
        "orgs": "/orgs",
        "org": f"/orgs/{org_id}",
        "storage": "/storage",
        "storage folder": f"/storage/{bucket}/docs/",
        "storage object": f"/storage/{bucket}/docs/file-0001.txt",
        "jobs (100k)": "/jobs",
        "jobs queue": "/jobs/email",
        "jobs queue dead": "/jobs/email?status=dead",
        "job": f"/jobs/email/{job_id}",
        "audit": "/audit",
        "audit by org": f"/audit?org={org_id}",
        "notifications": "/notifications",
        "advisors": "/advisors",
        "migrations": "/migrations",
        "mail": "/mail",
    }
    for name, (page, pattern) in {
        "grid page 2 (keyset)": (grid, r'href="([^"]+)" id="next-page"'),
        "grid sorted (index) page 2": (out["grid sorted by created_at (index)"], r'href="([^"]+)" id="next-page"'),
        "grid sorted (no index) page 2": (out["grid sorted by amount (no index)"], r'href="([^"]+)" id="next-page"'),
        "users page 2": ("/users", r'href="(/users\?[^"]*page=2[^"]*)"'),
    }.items():
        link = _link(client, page, pattern)
        if link is None:
            raise SystemExit(f"no next-page link on {page}")
        out[name] = link
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp:
        work = Path(tmp)
        write_project(work)
        copy_missing(work / "supabase" / "migrations")
        stack = start_stack(work)
        studio: subprocess.Popen[bytes] | None = None
        try:
            t0 = time.perf_counter()
            seeded = seed(stack.db_url, rows=args.rows, users=args.users, jobs=args.jobs)
            print(f"seeded {args.rows} rows, {args.users} users, {args.jobs} jobs in {time.perf_counter() - t0:.1f} s")
            from appkit import AppKit

            with AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key) as app:
                bucket = "bench-files"
                app.admin.files.create_bucket(bucket)
                for i in range(args.files):
                    app.admin.files.upload(bucket, f"docs/file-{i:04d}.txt", f"file {i}\n".encode())
                org = app.admin.orgs.list(limit=1)[0]
                job = app.admin.jobs.list(queue="email", status="dead", limit=1)[0]
            port = free_port()
            env = {**os.environ, "B_URL": stack.api_url, "B_KEY": stack.service_role_key, "B_DB": stack.db_url,
                   "B_ANON": stack.anon_key, "B_JWT": stack.jwt_secret, "B_WORKDIR": str(work)}
            studio = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env)
            base = f"http://127.0.0.1:{port}"
            _wait(base, studio)
            with httpx.Client(base_url=base, timeout=60) as client:
                targets = pages(client, seeded.user_ids[0], str(org.id), bucket, job.id)
                targets = {"baseline: /static/studio.css": "/static/studio.css", **targets}
                for path in targets.values():  # warm-up (and every page must answer 200)
                    for _ in range(2):
                        r = client.get(path)
                        if r.status_code != 200:
                            raise SystemExit(f"{path} answered {r.status_code}: {r.text[:300]}")
                times: dict[str, list[float]] = {name: [] for name in targets}
                cpu: dict[str, list[float]] = {name: [] for name in targets}
                wall: dict[str, list[float]] = {name: [] for name in targets}
                for _ in range(args.rounds):
                    for name, path in targets.items():
                        t = time.perf_counter()
                        r = client.get(path)
                        wall[name].append((time.perf_counter() - t) * 1000)
                        times[name].append(float(r.headers["x-bench-server-ms"]))
                        cpu[name].append(float(r.headers["x-bench-cpu-ms"]))
            base_ms = statistics.median(times["baseline: /static/studio.css"])
            print(f"\n{'page (server time)':34} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'cpu ms':>7}"
                  f" {'client ms':>9} {'x baseline':>10}  <= {TARGET_MS:.0f} ms")
            worst = 0.0
            for name, values in times.items():
                values.sort()
                med = statistics.median(values)
                p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
                worst = max(worst, med) if not name.startswith("baseline") else worst
                ok = "yes" if med <= TARGET_MS else "NO"
                print(f"{name:34} {med:10.1f} {p90:8.1f} {values[-1]:8.1f} {statistics.median(cpu[name]):7.1f}"
                      f" {statistics.median(wall[name]):9.1f} {med / base_ms:10.1f}  {ok}")
            print(f"\nslowest page median: {worst:.1f} ms (target <= {TARGET_MS:.0f} ms); "
                  f"{args.rounds} rounds, pages interleaved; load average {os.getloadavg()[0]:.1f}")
        finally:
            if studio is not None:
                studio.terminate()
                studio.wait(10)
            stack.stop()


if __name__ == "__main__":
    main()
