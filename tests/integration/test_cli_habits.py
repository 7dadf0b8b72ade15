"""The CLI's ecosystem habits: --version, -h, completion, -o json on every read command, the project
found by walking up to supabase/config.toml, "run `appkit init`" outside one, keys never wrapped when
piped, and one connection error for every --db-url command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appkit import __version__
from tests.integration.test_cli import assert_one_line_error
from tests.support import StackHandle, run_cli, write_project

BAD_DB = "postgresql://postgres:postgres@127.0.0.1:9/postgres"


def test_version_help_and_completion() -> None:
    for flag in ("--version", "-v"):
        proc = run_cli(flag)
        assert proc.returncode == 0 and proc.stdout.strip() == f"appkit {__version__}"
    top = run_cli("-h")
    assert top.returncode == 0 and "users" in top.stdout and "storage" in top.stdout
    assert "--install-completion" in top.stdout and "--show-completion" in top.stdout
    for args in (("users", "-h"), ("storage", "cp", "-h"), ("db", "status", "-h"), ("users", "import", "-h")):
        proc = run_cli(*args)
        assert proc.returncode == 0 and "Usage:" in proc.stdout, args


def test_outside_a_project_says_run_init(tmp_path: Path) -> None:
    for args in (("start",), ("status",), ("stop",), ("dev",), ("db", "migrate"), ("db", "new", "x"),
                 ("mail",), ("users", "list"), ("storage", "ls")):
        assert_one_line_error(run_cli(*args, cwd=tmp_path), "run `appkit init` first")
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_the_project_is_found_in_a_parent_folder(tmp_path: Path) -> None:
    write_project(tmp_path)
    nested = tmp_path / "src" / "deep"
    nested.mkdir(parents=True)
    proc = run_cli("db", "new", "from_below", cwd=nested)
    assert proc.returncode == 0, proc.stderr
    assert [p.name.split("_", 1)[1] for p in (tmp_path / "supabase" / "migrations").iterdir()] == ["from_below.sql"]
    assert not (nested / "supabase").exists()
    # init makes a project where it is run, even inside another one
    assert run_cli("init", cwd=nested).returncode == 0
    assert (nested / "supabase" / "config.toml").is_file()


def test_status_from_a_subfolder_and_keys_unwrapped_when_piped(stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("needs the local stack")
    sub = stack.workdir / "app" / "pkg"
    sub.mkdir(parents=True, exist_ok=True)
    narrow = {"COLUMNS": "30"}
    pretty = run_cli("status", cwd=sub, env=narrow)
    assert pretty.returncode == 0, pretty.stderr
    assert f"Service Role Key: {stack.service_role_key}\n" in pretty.stdout
    assert f"Anon Key: {stack.anon_key}\n" in pretty.stdout
    env = run_cli("status", "-o", "env", cwd=sub, env=narrow)
    assert f'SERVICE_ROLE_KEY="{stack.service_role_key}"' in env.stdout.splitlines()
    data = json.loads(run_cli("status", "-o", "json", cwd=sub, env=narrow).stdout)
    assert data["SERVICE_ROLE_KEY"] == stack.service_role_key
    dotenv = run_cli("status", "-o", "dotenv", cwd=sub, env=narrow)
    assert f'SUPABASE_ANON_KEY="{stack.anon_key}"' in dotenv.stdout.splitlines()
    shutil.rmtree(stack.workdir / "app")


def test_every_read_command_speaks_json(stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("needs the local stack")
    wd = ("--workdir", str(stack.workdir))
    for args in (("status",), ("db", "status"), ("mail",), ("users", "list"), ("storage", "ls"),
                 ("storage", "buckets", "list")):
        proc = run_cli(*args, *wd, "-o", "json", env={"COLUMNS": "30"})
        assert proc.returncode == 0, (args, proc.stderr)
        json.loads(proc.stdout)
        long = run_cli(*args, *wd, "--output", "json")
        assert long.returncode == 0 and json.loads(long.stdout) is not None


def test_one_connection_error_for_every_db_url_command(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / "u.json").write_text('[{"email": "a@example.com"}]')
    wd = ("--workdir", str(tmp_path))
    for args in (("db", "migrate"), ("db", "status"), ("mail",), ("users", "export", str(tmp_path / "x.json")),
                 ("users", "import", str(tmp_path / "u.json"))):
        proc = run_cli(*args, *wd, "--db-url", BAD_DB)
        assert_one_line_error(proc, "cannot connect to the database: connection failed:")
    assert not (tmp_path / "x.json").exists()
