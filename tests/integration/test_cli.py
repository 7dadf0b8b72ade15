"""The `appkit` CLI as a user runs it: init, start/status/stop, dev with Ctrl-C,
db migrate/status/reset/new, and bad input (one line, non-zero exit, no traceback)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import run_cli, start_stack, write_project


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0], lines[0]


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Path]:
    write_project(tmp_path)
    yield tmp_path
    run_cli("stop", "--workdir", str(tmp_path))


def status_env(workdir: Path) -> dict[str, str]:
    proc = run_cli("status", "--workdir", str(workdir), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_init_creates_a_supabase_cli_project(tmp_path: Path) -> None:
    proc = run_cli("init", "--workdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    sb = tmp_path / "supabase"
    assert (sb / "config.toml").is_file() and (sb / "migrations").is_dir() and (sb / "seed.sql").is_file()
    import tomllib

    cfg = tomllib.loads((sb / "config.toml").read_text())
    assert cfg["api"]["port"] == 54321 and cfg["db"]["port"] == 54322
    assert ".appkit" in (sb / ".gitignore").read_text()
    again = run_cli("init", "--workdir", str(tmp_path))
    assert_one_line_error(again, "already exists")
    assert run_cli("init", "--workdir", str(tmp_path), "--force").returncode == 0


def test_start_status_stop_and_data_survives(project: Path) -> None:
    (project / "supabase" / "migrations" / "20240101000000_notes.sql").write_text(
        "create table public.notes (id serial primary key, body text);"
    )
    (project / "supabase" / "seed.sql").write_text("insert into public.notes (body) values ('seeded');")
    proc = run_cli("start", "--workdir", str(project))
    assert proc.returncode == 0, proc.stderr
    assert "API URL" in proc.stdout
    env = status_env(project)
    assert set(env) == {"API_URL", "DB_URL", "ANON_KEY", "SERVICE_ROLE_KEY", "JWT_SECRET"}
    assert httpx.get(env["API_URL"] + "/health").json()["status"] == "ok"
    envfmt = run_cli("status", "--workdir", str(project), "-o", "env")
    assert f'API_URL="{env["API_URL"]}"' in envfmt.stdout.splitlines()
    dotenv = run_cli("status", "--workdir", str(project), "-o", "dotenv").stdout.splitlines()
    assert f'SUPABASE_URL="{env["API_URL"]}"' in dotenv and f'SUPABASE_ANON_KEY="{env["ANON_KEY"]}"' in dotenv

    with psycopg.connect(env["DB_URL"], autocommit=True) as conn:
        assert conn.execute("select body from public.notes").fetchall() == [("seeded",)]
        conn.execute("insert into public.notes (body) values ('kept')")

    second = run_cli("start", "--workdir", str(project))
    assert_one_line_error(second, "already running")

    assert run_cli("stop", "--workdir", str(project)).returncode == 0
    assert_one_line_error(run_cli("status", "--workdir", str(project)), "not running")
    with pytest.raises(httpx.ConnectError):
        httpx.get(env["API_URL"] + "/health")

    assert run_cli("start", "--workdir", str(project)).returncode == 0
    with psycopg.connect(status_env(project)["DB_URL"]) as conn:
        rows = [r[0] for r in conn.execute("select body from public.notes order by id")]
    assert rows == ["seeded", "kept"], "data survives stop/start and the seed is not re-run"

    assert run_cli("stop", "--workdir", str(project), "--no-backup").returncode == 0
    assert not (project / "supabase" / ".appkit").exists()


def test_dev_runs_in_foreground_and_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    write_project(tmp_path)
    handle = start_stack(tmp_path)
    assert handle.process is not None
    pgdata = tmp_path / "supabase" / ".appkit" / "pgdata"
    assert (pgdata / "postmaster.pid").exists()
    handle.process.send_signal(signal.SIGINT)
    assert handle.process.wait(30) == 0
    assert not (pgdata / "postmaster.pid").exists(), "postgres was stopped"
    assert not (tmp_path / "supabase" / ".appkit" / "stack.json").exists()


def test_crash_leaves_nothing_stale(tmp_path: Path) -> None:
    """SIGKILL the stack: the orphaned postgres and pid files are recovered on next start."""
    write_project(tmp_path)
    handle = start_stack(tmp_path)
    assert handle.process is not None
    handle.process.kill()
    handle.process.wait(10)
    pgdata = tmp_path / "supabase" / ".appkit" / "pgdata"
    assert (pgdata / "postmaster.pid").exists(), "postgres outlived the killed stack"
    assert_one_line_error(run_cli("status", "--workdir", str(tmp_path)), "not running")
    again = start_stack(tmp_path)
    try:
        with psycopg.connect(again.db_url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        again.stop()


def test_stale_postmaster_pid_is_removed(tmp_path: Path) -> None:
    write_project(tmp_path)
    handle = start_stack(tmp_path)
    handle.stop()
    pidfile = tmp_path / "supabase" / ".appkit" / "pgdata" / "postmaster.pid"
    # a pid file naming a live process that is not postgres (this test process)
    pidfile.write_text(f"{os.getpid()}\n{pidfile.parent}\n0\n0\n\n\n\n")
    again = start_stack(tmp_path)
    again.stop()


def test_db_new_migrate_status_reset(project: Path) -> None:
    wd = ["--workdir", str(project)]
    bad = run_cli("db", "new", "bad name!", *wd)
    assert_one_line_error(bad, "invalid migration name")
    assert_one_line_error(run_cli("db", "migrate", *wd), "not running")
    assert run_cli("start", *wd).returncode == 0
    made = run_cli("db", "new", "create_items", *wd)
    assert made.returncode == 0, made.stderr
    [path] = list((project / "supabase" / "migrations").glob("*_create_items.sql"))
    path.write_text("create table public.items (id int primary key);")
    (project / "supabase" / "seed.sql").write_text("insert into public.items values (1);")
    migrated = run_cli("db", "migrate", *wd)
    assert migrated.returncode == 0 and "1 migration(s) applied" in migrated.stdout, migrated.stderr
    st = run_cli("db", "status", *wd, "--json")
    assert [r["state"] for r in json.loads(st.stdout)] == ["applied"]

    db_url = status_env(project)["DB_URL"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into public.items values (2)")
    reset = run_cli("db", "reset", *wd)
    assert reset.returncode == 0, reset.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select array_agg(id) from public.items").fetchone() == ([1],)

    # drift: an applied file changed -> status flags it and migrate refuses
    path.write_text("create table public.items (id bigint primary key);")
    st = run_cli("db", "status", *wd)
    assert st.returncode == 1 and "drift" in st.stdout
    assert_one_line_error(run_cli("db", "migrate", *wd), "changed on disk")


def test_db_migrate_with_db_url_and_broken_sql(project: Path, stack) -> None:  # type: ignore[no-untyped-def]
    mig = project / "supabase" / "migrations"
    (mig / "1_ok.sql").write_text("create table cli_ok (id int);")
    (mig / "2_bad.sql").write_text("create table cli_half (id int);\nselect nope;")
    name = f"cli_{os.getpid()}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')
    url = stack.db_url.rsplit("/", 1)[0] + "/" + name
    proc = run_cli("db", "migrate", "--workdir", str(project), "--db-url", url)
    assert_one_line_error(proc, "2_bad.sql:2: 42703")
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('cli_ok') is not null, to_regclass('cli_half') is null").fetchone() \
            == (True, True)


def test_start_with_broken_migration_fails_cleanly(project: Path) -> None:
    (project / "supabase" / "migrations" / "1_bad.sql").write_text("create table x (id int);\ncreate tabel y;")
    proc = run_cli("start", "--workdir", str(project))
    assert_one_line_error(proc, "1_bad.sql:2: 42601")
    assert_one_line_error(run_cli("status", "--workdir", str(project)), "not running")
    pidfile = project / "supabase" / ".appkit" / "pgdata" / "postmaster.pid"
    assert not pidfile.exists(), "postgres was stopped after the failed start"


def test_unknown_workdir() -> None:
    for cmd in (["start"], ["status"], ["stop"], ["dev"], ["init"], ["db", "migrate"], ["db", "reset"]):
        proc = run_cli(*cmd, "--workdir", "/definitely/not/here")
        assert_one_line_error(proc, "does not exist")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("[api\nport=1", "invalid TOML"),
        ("[api]\nport = 'x'", "api.port"),
        ("[auth]\njwt_secret = 'too-short'", "auth.jwt_secret"),
    ],
)
def test_malformed_config(tmp_path: Path, config: str, fragment: str) -> None:
    (tmp_path / "supabase").mkdir()
    (tmp_path / "supabase" / "config.toml").write_text(config)
    for cmd in (["start"], ["dev"], ["db", "reset"]):
        assert_one_line_error(run_cli(*cmd, "--workdir", str(tmp_path)), fragment)
    assert not (tmp_path / "supabase" / ".appkit" / "pgdata").exists(), "nothing was created"


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        write_project(tmp_path, api_port=busy)
        assert_one_line_error(run_cli("start", "--workdir", str(tmp_path)), f"port {busy} is already in use")
        write_project(tmp_path, db_port=busy)
        assert_one_line_error(run_cli("dev", "--workdir", str(tmp_path)), f"port {busy} is already in use")


def test_bad_options_exit_non_zero_without_traceback(tmp_path: Path) -> None:
    proc = run_cli("status", "--workdir", str(tmp_path), "-o", "yaml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("frobnicate")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "appkit_cli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "dev" in proc.stdout
    time.sleep(0)


def test_start_against_an_external_database(project: Path, stack) -> None:  # type: ignore[no-untyped-def]
    """SUPABASE_DB_URL / --db-url replaces the embedded server: base schema + migrations go there."""
    name = f"ext_{os.getpid()}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    url = stack.db_url.rsplit("/", 1)[0] + "/" + name
    (project / "supabase" / "migrations" / "1_t.sql").write_text("create table ext_t (id int);")
    proc = run_cli("start", "--workdir", str(project), "--db-url", url)
    assert proc.returncode == 0, proc.stderr
    assert status_env(project)["DB_URL"] == url
    assert not (project / "supabase" / ".appkit" / "pgdata").exists(), "no embedded server was created"
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('auth.users') is not null, to_regclass('ext_t') is not null") \
            .fetchone() == (True, True)
    assert run_cli("stop", "--workdir", str(project)).returncode == 0
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
    bad = run_cli("start", "--workdir", str(project), "--db-url", "postgresql://x:y@127.0.0.1:1/none")
    assert_one_line_error(bad, "cannot connect to the database: connection failed:")
