"""Benchmark /rest/v1 against psycopg running the same SQL, in the same run.

    python benchmarks/bench_rest.py [--seconds 10] [--connections 32]

1. GET one row by primary key with an RLS policy on, many concurrent keep-alive clients
   on loopback (load from `wrk` when installed, else an httpx/asyncio load generator in a
   separate process), versus the identical transaction (BEGIN, request settings, the
   statement the service generates, COMMIT) through psycopg directly with the same
   concurrency. Targets: >= 50 % of the raw rate and >= 1,500 req/s.
2. POST 10,000 rows in one request (target <= 1 s), vs the same INSERT through psycopg.
3. GET 100,000 rows: time and the API server's peak RSS growth (VmHWM) during the request.

Prints a markdown table (also written to benchmarks/results/rest.md with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit
from typing import Any

import httpx
import jwt
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from appkit.local.postgres import EmbeddedPostgres  # noqa: E402
from appkit.local.rest.builder import read_sql  # noqa: E402
from appkit.local.rest.executor import SETUP_SQL, SETUP_SQL_RO  # noqa: E402
from appkit.local.rest.plan import Plan  # noqa: E402
from appkit.local.rest.builder import Params, table_source  # noqa: E402
from appkit.local.rest.parser import NodeQuery, parse_field, parse_operation, parse_select  # noqa: E402
from appkit.local.rest.schema import load_schema  # noqa: E402
from tests.support import start_stack, write_project  # noqa: E402

ROWS = 100_000
OWNER = str(uuid.uuid4())

SETUP = f"""
drop table if exists public.bench_rest_items, public.bench_rest_bulk;
create table public.bench_rest_items (
  id bigint primary key, owner uuid not null, name text not null, qty int not null,
  price numeric(10,2), created_at timestamptz not null default now()
);
insert into public.bench_rest_items (id, owner, name, qty, price)
  select g, '{OWNER}', 'item ' || g, g % 100, (g % 1000) / 10.0 from generate_series(1, {ROWS}) g;
alter table public.bench_rest_items enable row level security;
create policy bench_owner on public.bench_rest_items for select to authenticated using (owner = auth.uid());
create table public.bench_rest_bulk (
  id bigint primary key, owner uuid not null default auth.uid(), name text not null, qty int not null,
  price numeric(10,2), created_at timestamptz not null default now()
);
alter table public.bench_rest_bulk enable row level security;
create policy bench_bulk_ins on public.bench_rest_bulk for insert to authenticated with check (owner = auth.uid());
create policy bench_bulk_sel on public.bench_rest_bulk for select to authenticated using (owner = auth.uid());
analyze public.bench_rest_items;
notify pgrst, 'reload schema';
"""

HTTP_LOADGEN = """
import asyncio, json, random, sys, time
import httpx
url, headers, conc, seconds, rows = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
async def main():
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as c:
        done = 0; errors = 0
        end = time.perf_counter() + seconds
        async def worker():
            nonlocal done, errors
            while time.perf_counter() < end:
                r = await c.get(url, params={"select": "*", "id": f"eq.{random.randint(1, rows)}"})
                if r.status_code == 200: done += 1
                else: errors += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        print(json.dumps({"requests": done, "errors": errors, "seconds": time.perf_counter() - t0}))
asyncio.run(main())
"""

RAW_LOADGEN = """
import asyncio, json, random, sys, time
import psycopg
dsn, sql_text, setup_sql, setup, conc, seconds, rows = (sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]),
    int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]))
params = json.loads(sys.argv[8])
async def main():
    conns = [await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=1) for _ in range(conc)]
    done = 0
    end = time.perf_counter() + seconds
    async def worker(conn):
        nonlocal done
        while time.perf_counter() < end:
            async with conn.pipeline():  # one implicit transaction, as the service runs it
                await conn.execute(setup_sql, setup)
                cur = conn.cursor(binary=True)
                await cur.execute(sql_text, {**params, "p1": str(random.randint(1, rows))})
            row = await cur.fetchone()
            assert row[1] == 1
            done += 1
    t0 = time.perf_counter(); c0 = time.process_time()
    await asyncio.gather(*(worker(c) for c in conns))
    print(json.dumps({"requests": done, "seconds": time.perf_counter() - t0,
                      "cpu_us": (time.process_time() - c0) / max(done, 1) * 1e6}))
asyncio.run(main())
"""

RAW_FAST_LOADGEN = """
import asyncio, json, random, sys, time
sys.path.insert(0, sys.argv[9])
import psycopg
from appkit.local.rest import fastpath
dsn, sql_text, setup_sql, setup, conc, seconds, rows = (sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]),
    int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]))
params = json.loads(sys.argv[8])
async def main():
    conns = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(conc)]
    done = 0
    end = time.perf_counter() + seconds
    async def worker(conn):
        nonlocal done
        while time.perf_counter() < end:
            out = await fastpath.run(conn, [(setup_sql, setup),
                                            (sql_text, {**params, "p1": str(random.randint(1, rows))})], anon=False)
            assert out is not None and out[0][1] == 1
            done += 1
    t0 = time.perf_counter(); c0 = time.process_time()
    await asyncio.gather(*(worker(c) for c in conns))
    print(json.dumps({"requests": done, "seconds": time.perf_counter() - t0,
                      "cpu_us": (time.process_time() - c0) / max(done, 1) * 1e6}))
asyncio.run(main())
"""

WRK_LUA = """
wrk.method = "GET"
wrk.headers["apikey"] = "{apikey}"
wrk.headers["Authorization"] = "Bearer {token}"
math.randomseed(os.time())
request = function()
  return wrk.format(nil, "{path}?select=*&id=eq." .. math.random(1, {rows}))
end
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON {{\\"requests\\": %d, \\"seconds\\": %f, \\"errors\\": %d, \\"p50_ms\\": %f, \\"p99_ms\\": %f}}\\n",
    summary.requests, summary.duration / 1e6, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def generated_sql(db_url: str) -> tuple[str, dict[str, Any]]:
    """The exact statement /rest/v1 runs for GET /bench_rest_items?select=*&id=eq.N."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cache = await load_schema(conn, ["public"], 1)
    table = cache.tables[("public", "bench_rest_items")]
    plan = Plan(parse_select("*"), {(): NodeQuery(filters=[parse_operation(parse_field("id"), "eq.1", "filter")])})
    params = Params()
    rs = read_sql(cache, table_source(table), plan, params, kind="json", strip=False, count=None, limit=1000,
                  offset=0, max_rows=1000)
    return rs.sql, rs.params


def run_http_load(url: str, path: str, apikey: str, token: str, conc: int, seconds: float) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(WRK_LUA.format(apikey=apikey, token=token, path=path, rows=ROWS))
            script = f.name
        out = subprocess.run([wrk, "-t1", f"-c{conc}", f"-d{int(seconds)}s", "-s", script, url],
                             capture_output=True, text=True, check=True).stdout
        os.unlink(script)
        line = next(x for x in out.splitlines() if x.startswith("WRKJSON"))
        res = json.loads(line[len("WRKJSON "):])
        res["tool"] = "wrk"
        return res
    headers = {"apikey": apikey, "Authorization": f"Bearer {token}"}
    out = subprocess.run([sys.executable, "-c", HTTP_LOADGEN, url + path, json.dumps(headers), str(conc),
                          str(seconds), str(ROWS)], capture_output=True, text=True, check=True).stdout
    res = json.loads(out)
    res["tool"] = "httpx"
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--raw-connections", type=int, default=10, help="the service's pool size")
    ap.add_argument("--write", action="store_true", help="write benchmarks/results/rest.md")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-rest-"))
    write_project(work)
    cfg = work / "supabase" / "config.toml"
    cfg.write_text(cfg.read_text().replace("max_rows = 1000", f"max_rows = {ROWS}"))
    stack = start_stack(work)
    results: list[tuple[str, str, str]] = []
    try:
        assert stack.process is not None
        server_pid = stack.process.pid
        base = stack.api_url + "/rest/v1"
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute(SETUP)
        token = jwt.encode({"sub": OWNER, "role": "authenticated", "aud": "authenticated",
                            "exp": int(time.time()) + 3600}, stack.jwt_secret, algorithm="HS256")
        headers = {"apikey": stack.anon_key, "Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = httpx.get(f"{base}/bench_rest_bulk?limit=0", headers=headers)
            if r.status_code == 200:
                break
            time.sleep(0.1)
        r = httpx.get(f"{base}/bench_rest_items", params={"select": "*", "id": "eq.42"}, headers=headers)
        assert r.status_code == 200 and len(r.json()) == 1, r.text
        anon = httpx.get(f"{base}/bench_rest_items", params={"id": "eq.42"}, headers={"apikey": stack.anon_key})
        assert anon.json() == [], "RLS must hide rows from anon"

        # 1. GET by PK: HTTP vs raw psycopg -------------------------------------------------------------
        sql_text, sql_params = asyncio.run(generated_sql(stack.db_url))
        # the baselines reach Postgres as the service does: over the server's Unix socket
        port = urlsplit(stack.db_url).port
        sock = EmbeddedPostgres(stack.workdir / "supabase" / ".appkit" / "pgdata", port or 5432).socket_dir
        auth_url = f"postgresql://authenticator:postgres@/postgres?host={quote(str(sock))}&port={port}"
        setup = {"sp": '"public", "public", "extensions"', "role": "authenticated",
                 "claims": json.dumps({"sub": OWNER, "role": "authenticated", "aud": "authenticated"}),
                 "method": "GET", "path": "/bench_rest_items", "headers": json.dumps(headers), "cookies": "{}",
                 "timeout": "8s", "tz": None, "ro": "on"}
        # warm up both paths
        run_http_load(stack.api_url, "/rest/v1/bench_rest_items", stack.anon_key, token, args.connections, 2)
        raw_cmd = [sys.executable, "-c", RAW_LOADGEN, auth_url, sql_text, SETUP_SQL_RO, json.dumps(setup),
                   str(args.raw_connections), str(args.seconds), str(ROWS), json.dumps(sql_params)]
        warm = subprocess.run([*raw_cmd[:-3], "2", str(ROWS), json.dumps(sql_params)], capture_output=True, text=True)
        assert warm.returncode == 0, warm.stderr
        cpu0 = proc_cpu_s(server_pid)
        http = run_http_load(stack.api_url, "/rest/v1/bench_rest_items", stack.anon_key, token, args.connections,
                             args.seconds)
        http_cpu_us = (proc_cpu_s(server_pid) - cpu0) / max(http["requests"], 1) * 1e6
        raw = json.loads(subprocess.run(raw_cmd, capture_output=True, text=True, check=True).stdout)
        fast_cmd = [sys.executable, "-c", RAW_FAST_LOADGEN, *raw_cmd[3:], str(REPO / "src")]
        fast = json.loads(subprocess.run(fast_cmd, capture_output=True, text=True, check=True).stdout)
        fast_rps = fast["requests"] / fast["seconds"]
        http_rps = http["requests"] / http["seconds"]
        raw_rps = raw["requests"] / raw["seconds"]
        results.append((f"GET 1 row by PK, RLS on (HTTP, {http['tool']}, {args.connections} keep-alive conns)",
                        f"{http_rps:,.0f} req/s" + (f" (p50 {http['p50_ms']:.1f} ms, p99 {http['p99_ms']:.1f} ms)"
                                                    if "p50_ms" in http else ""),
                        f"errors: {http.get('errors', 0)}; API server CPU {http_cpu_us:.0f} us/request"))
        results.append((f"same transaction via psycopg directly ({args.raw_connections} conns, pipelined)",
                        f"{raw_rps:,.0f} req/s", f"baseline; client CPU {raw['cpu_us']:.0f} us/request"))
        results.append((f"same transaction via libpq pipeline directly, the service's own DB path "
                        f"({args.raw_connections} conns)", f"{fast_rps:,.0f} req/s",
                        f"stricter baseline; client CPU {fast['cpu_us']:.0f} us/request; "
                        f"HTTP / this = {http_rps / fast_rps:.0%}"))
        results.append(("ratio HTTP / raw psycopg", f"{http_rps / raw_rps:.0%}",
                        "target >= 50 % and >= 1,500 req/s: "
                        + ("MET" if http_rps / raw_rps >= 0.5 and http_rps >= 1500 else "NOT MET")))

        # 2. POST 10,000 rows ------------------------------------------------------------------------------
        rows = [{"id": i, "name": f"bulk {i}", "qty": i % 7, "price": i % 100} for i in range(1, 10_001)]
        body = json.dumps(rows).encode()
        t0 = time.perf_counter()
        r = httpx.post(f"{base}/bench_rest_bulk", content=body,
                       headers={**headers, "Content-Type": "application/json", "Prefer": "return=minimal"}, timeout=60)
        post_s = time.perf_counter() - t0
        assert r.status_code == 201, r.text
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("truncate public.bench_rest_bulk")
        with psycopg.connect(auth_url, autocommit=True) as conn:
            t0 = time.perf_counter()
            with conn.transaction():
                conn.execute(SETUP_SQL, {**setup, "method": "POST", "path": "/bench_rest_bulk"})
                conn.execute("insert into public.bench_rest_bulk (id, name, qty, price) select b.id, b.name, b.qty, "
                             "b.price from json_populate_recordset(null::public.bench_rest_bulk, %s::json) b",
                             (body.decode(),))
            raw_post_s = time.perf_counter() - t0
        results.append(("POST 10,000 rows in one request (return=minimal)", f"{post_s * 1000:,.0f} ms",
                        "target <= 1 s: " + ("MET" if post_s <= 1 else "NOT MET")))
        results.append(("same INSERT via psycopg directly", f"{raw_post_s * 1000:,.0f} ms",
                        f"ratio {post_s / raw_post_s:.1f}x"))

        # 3. GET 100,000 rows: streamed; peak RSS of the API server --------------------------------------
        time.sleep(0.5)
        rss_before = vm_rss_kb(server_pid)
        can_reset = reset_hwm(server_pid)
        hwm_before = vm_hwm_kb(server_pid)
        t0 = time.perf_counter()
        size = 0
        n = 0
        with httpx.stream("GET", f"{base}/bench_rest_items", params={"select": "*", "order": "id"},
                          headers=headers, timeout=120) as resp:
            assert resp.status_code == 200
            crange = resp.headers.get("content-range")
            for chunk in resp.iter_bytes():
                size += len(chunk)
        get_s = time.perf_counter() - t0
        hwm_after = vm_hwm_kb(server_pid)
        n = int(crange.split("/")[0].split("-")[1]) + 1 if crange and "-" in crange else 0
        assert n == ROWS, crange
        growth_mb = (hwm_after - max(hwm_before, rss_before)) / 1024
        results.append((f"GET {ROWS:,} rows ({size / 1e6:.1f} MB JSON)", f"{get_s * 1000:,.0f} ms",
                        f"server peak RSS growth {max(growth_mb, 0):.1f} MB"
                        + ("" if can_reset else " (VmHWM not resettable: growth over pre-request RSS)")))
        t0 = time.perf_counter()
        with psycopg.connect(auth_url, autocommit=True) as conn, conn.transaction():
            conn.execute(SETUP_SQL, setup)
            cur = conn.execute("select json_agg(t)::text from (select * from public.bench_rest_items order by id) t")
            raw_body = cur.fetchone()
        raw_get_s = time.perf_counter() - t0
        del raw_body
        results.append(("same rows as one json_agg via psycopg directly", f"{raw_get_s * 1000:,.0f} ms",
                        f"ratio {get_s / raw_get_s:.1f}x"))
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)

    table = ["| measurement | result | notes |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in results]
    out = "\n".join(table)
    print(out)
    if args.write:
        dest = REPO / "benchmarks" / "results" / "rest.md"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(textwrap.dedent(f"""\
            # /rest/v1 benchmark

            Command: `python benchmarks/bench_rest.py --seconds {args.seconds:g} --connections {args.connections}`
            Machine: {os.cpu_count()} cores (shared), loopback; the load generator runs in a separate process.
            Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.

            """) + out + "\n")


if __name__ == "__main__":
    random.seed(1)
    main()
