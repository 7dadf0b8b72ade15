"""The stack supervises its database: a Postgres killed with SIGKILL is noticed, answered
for (``/health`` and every service say 503, at once), restarted with crash recovery, and
the pools, REST's schema listener and realtime's change feed resume; ``appkit status``
tells the truth; a Postgres that cannot come back ends ``appkit dev`` with the reason;
``appkit stop`` after the server itself was killed stops the orphaned Postgres.

Each test runs a stack of its own (the session stack's Postgres is never killed)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from psycopg import sql

from tests.realtime_support import Recorder, client, config, wait_for
from tests.support import StackHandle, run_cli, start_stack, write_project

pytestmark = pytest.mark.integration


@pytest.fixture()
def own_stack(tmp_path: Path) -> Iterator[StackHandle]:
    write_project(tmp_path)
    handle = start_stack(tmp_path)
    try:
        yield handle
    finally:
        handle.stop()
        version = _datadir(tmp_path) / "PG_VERSION"
        held = version.with_name("PG_VERSION.held")
        if held.exists():
            held.rename(version)
        run_cli("stop", "--workdir", str(tmp_path))


def _datadir(workdir: Path) -> Path:
    return (workdir / "supabase" / ".appkit" / "pgdata").resolve()


def _postmaster(workdir: Path) -> psutil.Process:
    pid = int((_datadir(workdir) / "postmaster.pid").read_text().splitlines()[0])
    return psutil.Process(pid)


def _keys(h: StackHandle) -> dict[str, str]:
    return {"apikey": h.service_role_key, "Authorization": f"Bearer {h.service_role_key}"}


def _wait_status(http: httpx.Client, path: str, status: int, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = http.get(path)
            if r.status_code == status:
                return r
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not answer {status} within {timeout}s")
        time.sleep(0.05)


async def test_a_killed_postgres_is_answered_for_restarted_and_everything_resumes(own_stack: StackHandle) -> None:
    h = own_stack
    assert h.workdir is not None
    table = f"sup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(h.db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create table public.{} (id int primary key, body text)").format(sql.Identifier(table)))
        conn.execute(sql.SQL("grant select on public.{} to anon").format(sql.Identifier(table)))
        conn.execute(sql.SQL("alter publication supabase_realtime add table public.{}").format(sql.Identifier(table)))
    rt = await client(h)
    inserts = Recorder()
    ch = rt.channel("sup-changes", config())
    ch.on_postgres_changes("INSERT", inserts, table=table, schema="public")
    system: list[Any] = []
    ch.on_system(system.append)
    await ch.subscribe()
    await wait_for(lambda: bool(system), what="'Subscribed to PostgreSQL'")
    with httpx.Client(base_url=h.api_url, headers=_keys(h), timeout=30) as http:
        _wait_status(http, f"/rest/v1/{table}", 200)  # the schema cache has the new table
        for path in (f"/rest/v1/{table}", "/auth/v1/admin/users", "/storage/v1/bucket"):
            assert http.get(path).status_code == 200, path

        # a restart that cannot happen yet: the data directory is unusable while we look
        version = _datadir(h.workdir) / "PG_VERSION"
        version.rename(version.with_name("PG_VERSION.held"))
        _postmaster(h.workdir).kill()
        t0 = time.monotonic()
        health = _wait_status(http, "/health", 503, timeout=10)
        noticed = time.monotonic() - t0
        assert health.json()["down"] == ["database"] and health.json()["reason"], health.text
        assert noticed < 5, f"noticed after {noticed:.1f}s"

        t0 = time.monotonic()
        r = http.get(f"/rest/v1/{table}")
        assert r.status_code == 503 and r.json()["code"] == "PGRST000", r.text
        assert set(r.json()) == {"code", "details", "hint", "message"}
        r = http.get("/auth/v1/admin/users")
        assert r.status_code == 503 and r.json()["error_code"] == "unexpected_failure", r.text
        r = http.get("/auth/v1/admin/users", headers={"X-Supabase-Api-Version": "2024-01-01"})
        assert r.status_code == 503 and r.json()["code"] == "unexpected_failure", r.text
        r = http.get("/storage/v1/bucket")
        assert r.status_code == 503 and r.json()["statusCode"] == "503" and r.json()["error"], r.text
        r = http.post("/realtime/v1/api/broadcast", json={"messages": []})
        assert r.status_code == 503 and "message" in r.json(), r.text
        assert time.monotonic() - t0 < 5, "requests must fail fast while the database is down"

        status = run_cli("status", "--workdir", str(h.workdir))
        assert status.returncode == 1 and "database down" in status.stderr, status.stderr

        version.with_name("PG_VERSION.held").rename(version)  # the next restart attempt succeeds
        _wait_status(http, "/health", 200, timeout=60)
        assert run_cli("status", "--workdir", str(h.workdir)).returncode == 0

        r = http.get(f"/rest/v1/{table}")
        assert r.status_code == 200 and r.json() == [], r.text
        assert http.get("/auth/v1/admin/users").status_code == 200
        assert http.get("/storage/v1/bucket").status_code == 200
        with psycopg.connect(h.db_url, autocommit=True) as conn:  # the schema listener is back
            conn.execute("create table public.sup_after (id int)")
            conn.execute("grant select on public.sup_after to anon")
            conn.execute("notify pgrst, 'reload schema'")
        _wait_status(http, "/rest/v1/sup_after", 200, timeout=30)
        assert (await asyncio.to_thread(httpx.get, f"{h.api_url}/health")).json()["status"] == "ok"

    # the change feed is back: a row inserted after the restart reaches the subscriber
    deadline = time.monotonic() + 30
    n = 0
    while not inserts.items and time.monotonic() < deadline:
        n += 1
        with psycopg.connect(h.db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("insert into public.{} values (%s, 'after')").format(sql.Identifier(table)), [n])
        await asyncio.sleep(1)
    assert inserts.items and inserts.items[0]["data"]["record"]["body"] == "after"
    await rt.close()


def test_a_postgres_that_cannot_come_back_ends_appkit_dev(own_stack: StackHandle) -> None:
    h = own_stack
    assert h.workdir is not None and h.process is not None
    version = _datadir(h.workdir) / "PG_VERSION"
    version.rename(version.with_name("PG_VERSION.held"))
    _postmaster(h.workdir).kill()
    code = h.process.wait(120)
    log = (h.workdir / "stack-test.log").read_text(errors="replace")
    assert code == 1, log[-2000:]
    last = [ln for ln in log.splitlines() if ln.strip()][-1]
    assert "postgres could not be restarted" in last and "Traceback" not in log, log[-2000:]


def test_stop_after_the_server_was_killed_stops_the_orphaned_postgres(own_stack: StackHandle) -> None:
    h = own_stack
    assert h.workdir is not None and h.process is not None
    postmaster = _postmaster(h.workdir)
    h.process.kill()
    h.process.wait(10)
    assert postmaster.is_running(), "postgres outlived the killed server (test premise)"
    stop = run_cli("stop", "--workdir", str(h.workdir))
    assert stop.returncode == 0 and "Stopped" in stop.stdout, stop.stdout + stop.stderr
    postmaster.wait(10)
    assert not (_datadir(h.workdir) / "postmaster.pid").exists()
    assert run_cli("stop", "--workdir", str(h.workdir)).stdout.strip() == "The local stack is not running."


def test_sigterm_does_not_trigger_a_restart(own_stack: StackHandle) -> None:
    """A clean stop stops Postgres for good: the supervisor must not bring it back."""
    h = own_stack
    assert h.workdir is not None and h.process is not None
    postmaster = _postmaster(h.workdir)
    h.process.send_signal(signal.SIGTERM)
    assert h.process.wait(30) == 0
    postmaster.wait(10)
    time.sleep(1)
    assert not (_datadir(h.workdir) / "postmaster.pid").exists()
    assert os.path.exists(_datadir(h.workdir))
