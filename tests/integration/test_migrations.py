"""The migration runner against real Postgres: ordering, idempotency, drift, two
concurrent runners, a failing file rolled back with file/line, seeds."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from appkit.db import MigrationRunner, discover_migrations
from appkit.errors import ConfigError, MigrationDriftError, MigrationError


@pytest.fixture()
def dburl(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh empty database on the session stack's server."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = stack.db_url.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def write(d: Path, name: str, sql: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(sql)
    return p


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")}


def history(url: str) -> list[tuple[str, str, list[str]]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "select version, name, statements from supabase_migrations.schema_migrations order by version")]


def test_applies_in_version_order_and_records_like_the_cli(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    write(d, "20240102000000_second.sql", "alter table a add column b int;\ninsert into a values (1, 2);")
    write(d, "20240101000000_first.sql", "-- first\ncreate table a (id int);")
    write(d, "README.md", "not a migration")
    runner = MigrationRunner(dburl)
    applied = runner.apply(discover_migrations(d))
    assert [m.name for m in applied] == ["first", "second"]
    assert history(dburl) == [
        ("20240101000000", "first", ["-- first\ncreate table a (id int)"]),
        ("20240102000000", "second", ["alter table a add column b int", "insert into a values (1, 2)"]),
    ]
    # idempotent: nothing applied a second time
    assert runner.apply(discover_migrations(d)) == []
    assert [s.state for s in runner.status(discover_migrations(d))] == ["applied", "applied"]


def test_pending_then_new_file(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "1_a.sql", "create table t1 (id int);")
    runner = MigrationRunner(dburl)
    runner.apply(discover_migrations(d))
    write(d, "2_b.sql", "create table t2 (id int);")
    assert [s.state for s in runner.status(discover_migrations(d))] == ["applied", "pending"]
    assert [m.name for m in runner.apply(discover_migrations(d))] == ["b"]
    assert tables(dburl) == {"t1", "t2"}


def test_drift_is_reported_not_ignored(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    f = write(d, "1_a.sql", "create table t1 (id int);")
    runner = MigrationRunner(dburl)
    runner.apply(discover_migrations(d))
    f.write_text("create table t1 (id bigint);")
    write(d, "2_b.sql", "create table t2 (id int);")
    with pytest.raises(MigrationDriftError, match="1_a.sql"):
        runner.apply(discover_migrations(d))
    assert tables(dburl) == {"t1"}, "nothing applied after drift was detected"
    assert [s.state for s in runner.status(discover_migrations(d))] == ["drift", "pending"]
    # whitespace-only edits are not drift (statements are trimmed like the CLI does)
    f.write_text("\n\ncreate table t1 (id int)  ;\n")
    assert runner.plan(discover_migrations(d)).drifted == []


def test_remote_only_versions_are_listed(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    f = write(d, "1_a.sql", "select 1;")
    runner = MigrationRunner(dburl)
    runner.apply(discover_migrations(d))
    f.unlink()
    assert [(s.version, s.state) for s in runner.status(discover_migrations(d))] == [("1", "remote only")]


def test_failing_file_rolls_back_and_stops_with_file_and_line(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "1_ok.sql", "create table ok (id int);")
    write(d, "2_bad.sql", "create table half (id int);\n\ninsert into half values (1);\nselect *\n  from missing_table;\n")
    write(d, "3_never.sql", "create table never (id int);")
    runner = MigrationRunner(dburl)
    with pytest.raises(MigrationError) as info:
        runner.apply(discover_migrations(d))
    err = info.value
    assert err.line == 5 and err.code == "42P01"
    assert str(err).startswith("2_bad.sql:5: 42P01: relation \"missing_table\" does not exist")
    assert tables(dburl) == {"ok"}, "the failing file was rolled back and later files not run"
    assert [h[0] for h in history(dburl)] == ["1"]


def test_syntax_error_line(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "1_bad.sql", "create table a (id int);\ncreate tabel b (id int);")
    with pytest.raises(MigrationError, match=r"1_bad.sql:2: 42601: syntax error"):
        MigrationRunner(dburl).apply(discover_migrations(d))
    assert tables(dburl) == set()


def test_two_concurrent_runners_apply_each_file_once(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "1_log.sql", "create table log (n int);")
    for i in range(2, 8):
        write(d, f"{i}_step.sql", f"insert into log values ({i}); select pg_sleep(0.05);")
    errors: list[BaseException] = []
    results: list[list[str]] = []

    def run() -> None:
        try:
            results.append([m.version for m in MigrationRunner(dburl).apply(discover_migrations(d))])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for r in results for v in r) == sorted(str(i) for i in range(1, 8))
    with psycopg.connect(dburl) as conn:
        assert conn.execute("select count(*), count(distinct n) from log").fetchone() == (6, 6)


def test_seed_runs_in_one_transaction(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "1_t.sql", "create table s (id int primary key);")
    runner = MigrationRunner(dburl)
    runner.apply(discover_migrations(d))
    bad = write(tmp_path, "seed.sql", "insert into s values (1);\ninsert into s values (1);\n")
    with pytest.raises(MigrationError, match=r"seed.sql:2: 23505"):
        runner.seed([bad])
    with psycopg.connect(dburl) as conn:
        assert conn.execute("select count(*) from s").fetchone() == (0,)
    good = write(tmp_path, "seed.sql", "insert into s values (1);\ninsert into s values (2);\n")
    assert runner.seed([good]) == [good]
    with psycopg.connect(dburl) as conn:
        assert conn.execute("select count(*) from s").fetchone() == (2,)


def test_a_repeated_version_fails_when_applied_as_under_the_cli(dburl: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "1_a.sql", "create table dup_a (id int);")
    write(d, "01_b.sql", "create table dup_b (id int);")  # "1" and "01" are different versions for the CLI
    write(d, "1_c.sql", "create table dup_c (id int);")
    found = discover_migrations(d)
    assert [m.path.name for m in found] == ["01_b.sql", "1_a.sql", "1_c.sql"]
    with pytest.raises(MigrationError) as info:
        MigrationRunner(dburl).apply(found)
    assert info.value.file == str(d / "1_c.sql")
    assert 'duplicate key value violates unique constraint "schema_migrations_pkey" (SQLSTATE 23505)' in str(info.value)
    assert "Key (version)=(1) already exists." in str(info.value)
    assert tables(dburl) == {"dup_a", "dup_b"}  # the repeated file was rolled back, the others stay
    # later runs skip it, as the CLI does (its version is applied); it is not reported as drift
    assert MigrationRunner(dburl).apply(discover_migrations(d)) == []
    assert [s.state for s in MigrationRunner(dburl).status(discover_migrations(d))] == ["applied"] * 3


def test_unreadable_migration_file(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "1_bin.sql").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        discover_migrations(d)


def test_unreachable_database() -> None:
    from appkit.errors import DatabaseError

    with pytest.raises(DatabaseError, match="cannot connect"):
        MigrationRunner("postgresql://nobody:x@127.0.0.1:1/none", connect_timeout=2).applied()
