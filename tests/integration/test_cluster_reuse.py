"""A project deleted and made again at the same path starts from an empty cluster: as root the
cluster lives under /var/lib/appkit keyed by the project's path, and must never be taken over by a
new project there (its migrations, under other version names, would apply twice)."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from tests.support import start_stack, write_project


def test_a_recreated_project_does_not_inherit_the_old_cluster(tmp_path: Path) -> None:
    workdir = tmp_path / "proj"
    for round_ in range(2):
        workdir.mkdir()
        write_project(workdir)
        (workdir / "supabase" / "migrations" / f"2024010100000{round_}_t.sql").write_text(
            "create table public.reused (id int primary key);")
        handle = start_stack(workdir)
        try:
            with psycopg.connect(handle.db_url) as conn:
                rows = conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
            assert rows == [(f"2024010100000{round_}",)], rows
        except BaseException:
            print((workdir / "stack-test.log").read_text()[-3000:])
            raise
        finally:
            handle.stop()
        shutil.rmtree(workdir)  # the project folder is gone; its cluster is left behind (as root)


pytestmark = pytest.mark.integration
