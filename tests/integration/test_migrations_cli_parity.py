"""The migration runner and the real Supabase CLI (``supabase db push --db-url``) on the same
folder: the same order (by file name, so ``10_x.sql`` before ``9_y.sql``), the same files
skipped with the same warning, the same history rows and data, and the same failure on a
repeated version."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from appkit.db import MigrationRunner, discover_migrations
from appkit.errors import MigrationError
from tests.support import StackHandle, supabase_cli

pytestmark = pytest.mark.integration

FILES = {
    "10_early.sql": "create table public.order_log (n text);\ninsert into public.order_log values ('10');",
    "9_late.sql": "insert into public.order_log values ('9');",
    "20240101000000_a.sql": "insert into public.order_log values ('a');",
    "README.md": "notes",
    "notes.sql": "insert into public.order_log values ('notes');",
    "20240101000000-bad.sql": "insert into public.order_log values ('bad');",
}


@pytest.fixture()
def two_dbs(stack: StackHandle) -> Iterator[tuple[str, str]]:
    names = [f"parity_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for n in names:
            conn.execute(f'create database "{n}"')
    base = stack.db_url.rsplit("/", 1)[0]
    yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for n in names:
            conn.execute(f'drop database if exists "{n}" with (force)')


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    subprocess.run([supabase_cli(), "init", "--yes"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    migrations = tmp_path / "supabase" / "migrations"
    migrations.mkdir(exist_ok=True)
    for name, text in files.items():
        (migrations / name).write_text(text)
    return migrations


def push(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [supabase_cli(), "db", "push", "--db-url", f"{url}?sslmode=disable" if "?" not in url else url,
         "--include-all", "--yes"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, input="y\n",
    )


def state(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        history = conn.execute("select version, name, statements from supabase_migrations.schema_migrations "
                               "order by version").fetchall()
        rows = conn.execute("select n from public.order_log").fetchall() \
            if conn.execute("select to_regclass('public.order_log')").fetchone() != (None,) else []
    return history, rows


def test_order_skips_and_history_match_the_cli(tmp_path: Path, two_dbs: tuple[str, str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    cli_db, our_db = two_dbs
    migrations = project(tmp_path, FILES)
    cli = push(tmp_path, cli_db)
    assert cli.returncode == 0, cli.stderr
    with caplog.at_level(logging.WARNING, logger="appkit.db"):
        applied = MigrationRunner(our_db).apply(discover_migrations(migrations))
    assert [m.path.name for m in applied] == ["10_early.sql", "20240101000000_a.sql", "9_late.sql"]
    assert state(our_db) == state(cli_db)
    assert state(our_db)[1] == [("10",), ("a",), ("9",)]
    cli_skips = [line for line in cli.stderr.splitlines() if line.startswith("Skipping migration")]
    assert cli_skips and [r.getMessage() for r in caplog.records] == cli_skips


def test_a_repeated_version_fails_as_under_the_cli(tmp_path: Path, two_dbs: tuple[str, str]) -> None:
    cli_db, our_db = two_dbs
    files = {**FILES, "20240101000000_b.sql": "insert into public.order_log values ('b');"}
    migrations = project(tmp_path, files)
    cli = push(tmp_path, cli_db)
    assert cli.returncode != 0
    assert 'ERROR: duplicate key value violates unique constraint "schema_migrations_pkey" (SQLSTATE 23505)' \
        in cli.stderr
    with pytest.raises(MigrationError) as info:
        MigrationRunner(our_db).apply(discover_migrations(migrations))
    assert 'ERROR: duplicate key value violates unique constraint "schema_migrations_pkey" (SQLSTATE 23505)' \
        in str(info.value)
    assert "Key (version)=(20240101000000) already exists." in cli.stderr
    assert "Key (version)=(20240101000000) already exists." in str(info.value)
    assert state(our_db) == state(cli_db)
