"""Auth benchmark: password sign-in, refresh-token and GET /user rates of the local stack.

    python benchmarks/bench_auth.py                 # 8 s per phase, 32 concurrent clients
    python benchmarks/bench_auth.py --seconds 4     # quicker

Starts its own local stack in a temp dir. Load comes from a separate process (a small
keep-alive HTTP/1.1 client on asyncio, so the load generator is not the bottleneck).

Baseline, measured in the same run on the same machine: the raw bcrypt rate at the same
cost (bcrypt.checkpw in one thread per CPU, in another process) -- the physical limit of
password sign-in. Targets (issue 4): sign-in >= 80 % of raw bcrypt; refresh and GET /user
>= 1,000 req/s each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import httpx
import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appkit.local.auth.passwords import bcrypt_cost  # noqa: E402
from tests.support import start_stack, write_project  # noqa: E402


# -- baseline: raw bcrypt ------------------------------------------------------------------
def _bcrypt_worker(hashed: bytes, seconds: float, out: Any) -> None:
    counts = [0] * (os.cpu_count() or 1)

    def run(i: int) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            bcrypt.checkpw(b"bench-password-1", hashed)
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(counts))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(sum(counts) / (time.perf_counter() - start))


def raw_bcrypt_rate(cost: int, seconds: float) -> float:
    hashed = bcrypt.hashpw(b"bench-password-1", bcrypt.gensalt(cost))
    q: Any = mp.Queue()
    p = mp.Process(target=_bcrypt_worker, args=(hashed, seconds, q))
    p.start()
    rate = float(q.get())
    p.join()
    return rate


# -- load generator (separate process) ----------------------------------------------------------
async def _conn_loop(host: str, port: int, make: Any, state: dict[str, Any], deadline: float, stats: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            writer.write(make(state))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            if status == 200:
                stats[0] += 1
                if state.get("kind") == "refresh":
                    state["refresh_token"] = json.loads(body)["refresh_token"]
            else:
                stats[1] += 1
                if stats[1] < 3:
                    sys.stderr.write(f"{state.get('kind')}: HTTP {status} {body[:200]!r}\n")
    finally:
        writer.close()


def _request(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _load_worker(kind: str, api_url: str, anon: str, states: list[dict[str, Any]], seconds: float, out: Any) -> None:
    parts = urlsplit(api_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    hosthdr = f"{host}:{port}"

    def make(state: dict[str, Any]) -> bytes:
        if kind == "signin":
            body = json.dumps({"email": state["email"], "password": "bench-password-1"}).encode()
            return _request("POST", "/auth/v1/token?grant_type=password", hosthdr, {"apikey": anon}, body)
        if kind == "refresh":
            body = json.dumps({"refresh_token": state["refresh_token"]}).encode()
            return _request("POST", "/auth/v1/token?grant_type=refresh_token", hosthdr, {"apikey": anon}, body)
        return _request("GET", "/auth/v1/user", hosthdr,
                        {"apikey": anon, "Authorization": f"Bearer {state['access_token']}"})

    async def main() -> tuple[int, int, float, list[str]]:
        stats = [0, 0]
        for s in states:
            s["kind"] = kind
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(_conn_loop(host, port, make, s, deadline, stats) for s in states))
        return stats[0], stats[1], time.perf_counter() - start, [str(s.get("refresh_token", "")) for s in states]

    # uvloop, as the server uses: the load generator shares the machine's two cores with the
    # server and Postgres, so its own CPU per request is kept low
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        out.put(runner.run(main()))


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of a process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(kind: str, api_url: str, anon: str, states: list[dict[str, Any]], seconds: float,
             server_pid: int) -> tuple[float, int, float]:
    """(successful req/s, errors, server CPU ms per request); ``states`` get the latest refresh tokens."""
    q: Any = mp.Queue()
    p = mp.Process(target=_load_worker, args=(kind, api_url, anon, states, seconds, q))
    cpu0 = cpu_seconds(server_pid)
    p.start()
    ok, errors, elapsed, tokens = q.get()
    cpu1 = cpu_seconds(server_pid)
    p.join()
    for state, token in zip(states, tokens, strict=True):
        if token:
            state["refresh_token"] = token
    return ok / elapsed, errors, (cpu1 - cpu0) * 1000 / max(ok + errors, 1)


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of each phase")
    ap.add_argument("--clients", type=int, default=32, help="concurrent connections for refresh and /user")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (medians reported)")
    ap.add_argument("--signin-clients", type=int, default=8, help="concurrent connections for sign-in")
    args = ap.parse_args()

    cost = bcrypt_cost()
    workdir = Path(tempfile.mkdtemp(prefix="appkit-bench-auth-"))
    workdir.chmod(0o755)
    write_project(workdir)
    stack = start_stack(workdir)
    try:
        url = stack.api_url + "/auth/v1"
        admin = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
        with httpx.Client(timeout=60) as http:
            emails = []
            for i in range(args.signin_clients):
                email = f"bench-{i}-{os.getpid()}@example.com"
                r = http.post(f"{url}/admin/users", headers=admin,
                              json={"email": email, "password": "bench-password-1", "email_confirm": True})
                r.raise_for_status()
                emails.append(email)
            sessions = []
            for i in range(args.clients):
                r = http.post(f"{url}/token?grant_type=password", headers={"apikey": stack.anon_key},
                              json={"email": emails[i % len(emails)], "password": "bench-password-1"})
                r.raise_for_status()
                sessions.append(r.json())

        assert stack.process is not None
        pid = stack.process.pid
        load_before = os.getloadavg()[0]
        rounds: list[dict[str, float]] = []
        for _ in range(args.rounds):  # interleaved, so baseline and server see the same machine load
            raw = raw_bcrypt_rate(cost, args.seconds)
            signin, e1, c1 = run_load("signin", stack.api_url, stack.anon_key,
                                      [{"email": e} for e in emails], args.seconds, pid)
            refresh, e2, c2 = run_load("refresh", stack.api_url, stack.anon_key, sessions, args.seconds, pid)
            user, e3, c3 = run_load("user", stack.api_url, stack.anon_key,
                                    [{"access_token": s["access_token"]} for s in sessions], args.seconds, pid)
            rounds.append({"raw": raw, "signin": signin, "ratio": signin / raw, "refresh": refresh, "user": user,
                           "e1": e1, "e2": e2, "e3": e3, "c1": c1, "c2": c2, "c3": c3})
        load_after = os.getloadavg()[0]
    finally:
        stack.stop()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    def errs(key: str) -> int:
        return int(sum(r[key] for r in rounds))

    cpus = os.cpu_count()
    print(f"# Auth benchmark ({cpus} CPUs, bcrypt cost {cost}, {args.rounds} interleaved rounds of {args.seconds:.0f} s"
          f" per phase, load average {load_before:.1f} -> {load_after:.1f}; medians)\n")
    print("| measurement | rate (req/s) | baseline | ratio / target | errors | server CPU ms/req |")
    print("|---|---:|---:|---|---:|---:|")
    print(f"| raw bcrypt.checkpw, {cpus} threads (baseline) | {med('raw'):,.1f} | - | - | - | - |")
    print(f"| password sign-in, {args.signin_clients} clients | {med('signin'):,.1f} | {med('raw'):,.1f} | "
          f"{med('ratio'):.0%} of raw bcrypt (target >= 80 %) | {errs('e1')} | {med('c1'):.2f} |")
    print(f"| refresh_token grant, {args.clients} clients | {med('refresh'):,.0f} | 1,000 | "
          f"{med('refresh') / 1000:.2f}x target | {errs('e2')} | {med('c2'):.2f} |")
    print(f"| GET /user, {args.clients} clients | {med('user'):,.0f} | 1,000 | {med('user') / 1000:.2f}x target |"
          f" {errs('e3')} | {med('c3'):.2f} |")
    print("\nper round (sign-in/raw bcrypt ratio, refresh req/s, /user req/s): "
          + "; ".join(f"{r['ratio']:.0%}, {r['refresh']:,.0f}, {r['user']:,.0f}" for r in rounds))


if __name__ == "__main__":
    main()
