"""The real Supabase CLI's database advisors (splinter lints) report nothing at WARN or above on
schema appkit; a deliberately bad policy in the schema is reported (the check can fail)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import StackHandle


def supabase_cli() -> str:
    path = os.environ.get("APPKIT_SUPABASE_CLI") or "/tmp/sbcli/node_modules/.bin/supabase"
    if not Path(path).exists():
        pytest.fail(f"the Supabase CLI is not installed at {path} (set APPKIT_SUPABASE_CLI)")
    return path


def advisors(db_url: str, cwd: Path) -> list[dict[str, Any]]:
    url = db_url + ("&" if "?" in db_url else "?") + "sslmode=disable"
    proc = subprocess.run([supabase_cli(), "db", "advisors", "--db-url", url, "--level", "info", "-o", "json"],
                          cwd=cwd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else []


def in_appkit(item: dict[str, Any]) -> bool:
    meta = item.get("metadata") or {}
    return meta.get("schema") == "appkit" or "`appkit." in (item.get("detail") or "")


def test_no_warnings_on_schema_appkit(stack: StackHandle, tmp_path: Path) -> None:
    found = [i for i in advisors(stack.db_url, tmp_path) if in_appkit(i)]
    serious = [f"{i['level']} {i['name']}: {i['detail']}" for i in found if i["level"] in ("WARN", "ERROR")]
    assert not serious, "\n".join(serious)


def test_a_bad_policy_is_reported(stack: StackHandle, tmp_path: Path) -> None:
    if stack.workdir is None:
        pytest.skip("creates a table in schema appkit")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("create table appkit.advisor_probe (id int primary key, owner uuid);"
                     "alter table appkit.advisor_probe enable row level security;"
                     "create policy probe on appkit.advisor_probe for select to authenticated "
                     "using (owner = auth.uid())")
        try:
            found = [i for i in advisors(stack.db_url, tmp_path) if in_appkit(i)]
        finally:
            conn.execute("drop table appkit.advisor_probe")
    assert any(i["name"] == "auth_rls_initplan" and i["level"] == "WARN" for i in found), found
