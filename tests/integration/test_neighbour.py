"""Two test runs on one machine cannot break each other's stacks: a second pytest run
resets ``$TMPDIR/pytest-of-<user>`` to 0700 while a stack whose workdir lives below it
runs, and that stack's Postgres keeps working (checkpoints, new connections, a restart).
The stack itself never changes the permissions of the user's directories."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import start_stack, write_project

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs Postgres as another user")

NEIGHBOUR_TEST = """
def test_uses_a_temp_dir(tmp_path):
    (tmp_path / "x").write_text("x")
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_neighbouring_pytest_run_does_not_break_a_running_stack(tmp_path: Path) -> None:
    shared_tmp = tmp_path / "tmp"
    user_root = shared_tmp / "pytest-of-root"  # what pytest makes below $TMPDIR
    workdir = user_root / "pytest-7" / "stack0"
    workdir.mkdir(parents=True)
    user_root.chmod(0o700)
    (user_root / "pytest-7").chmod(0o700)
    write_project(workdir)
    handle = start_stack(workdir)
    try:
        assert _mode(user_root) == 0o700, "the stack opened up the user's directory"
        assert _mode(user_root / "pytest-7") == 0o700
        user_root.chmod(0o755)  # an earlier run on a laxer umask; the neighbour resets it
        neighbour = tmp_path / "neighbour"
        neighbour.mkdir()
        (neighbour / "test_n.py").write_text(NEIGHBOUR_TEST)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(neighbour / "test_n.py")],
            cwd=neighbour, env={**os.environ, "TMPDIR": str(shared_tmp), "PYTEST_ADDOPTS": ""},
            capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert _mode(user_root) == 0o700, "the neighbour did not reset the directory (test premise)"

        with psycopg.connect(handle.db_url, autocommit=True) as conn:
            conn.execute("create table neighbour_probe (id int)")
            conn.execute("insert into neighbour_probe values (1)")
            conn.execute("checkpoint")  # rewrites pg_control: what PANICked before
            conn.execute("select pg_reload_conf()")
        keys = {"apikey": handle.service_role_key, "Authorization": f"Bearer {handle.service_role_key}"}
        r = httpx.get(f"{handle.api_url}/rest/v1/neighbour_probe", headers=keys, timeout=30)
        assert r.status_code == 200 and r.json() == [{"id": 1}], r.text
        r = httpx.get(f"{handle.api_url}/auth/v1/admin/users", headers=keys, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        handle.stop()
    log = (workdir / "supabase" / ".appkit" / "pgdata" / ".." / "postgres.log").resolve()
    text = log.read_text(errors="replace") if log.exists() else ""
    assert "PANIC" not in text and "Permission denied" not in text, text[-2000:]

    # a second start below the now-private directory works as well
    handle = start_stack(workdir)
    try:
        with psycopg.connect(handle.db_url, autocommit=True) as conn:
            assert conn.execute("select id from neighbour_probe").fetchall() == [(1,)]
    finally:
        handle.stop()
    assert _mode(user_root) == 0o700
