"""The real Supabase CLI's advisors report nothing at WARN or above on schema ``appkit``."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.support import StackHandle
from tests.svc_support import sql, supabase_cli


def _about_appkit(lint: dict[str, Any]) -> bool:
    meta = lint.get("metadata") or {}
    return meta.get("schema") == "appkit" or "appkit." in str(lint.get("detail", ""))


def appkit_lints(stack: StackHandle, cwd: Any) -> list[str]:
    sep = "&" if "?" in stack.db_url else "?"
    proc = subprocess.run(
        [supabase_cli(), "db", "advisors", "--db-url", f"{stack.db_url}{sep}sslmode=disable", "--level", "warn",
         "--type", "all", "--output-format", "json"],
        capture_output=True, text=True, timeout=180, cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    start = proc.stdout.find("{")
    assert start >= 0, proc.stdout
    lints: list[dict[str, Any]] = json.loads(proc.stdout[start:])["results"]
    return [f"{lint['level']} {lint['name']}: {lint['detail']}" for lint in lints if _about_appkit(lint)]


def test_advisors_clean_on_appkit_schema(stack: StackHandle, tmp_path: Any) -> None:
    ours = appkit_lints(stack, tmp_path)
    assert ours == [], "\n".join(ours)


def test_advisors_would_report_a_bad_function(stack: StackHandle, tmp_path: Any) -> None:
    """The check above can fail: a function without a fixed search_path is reported."""
    sql(stack, "create function appkit._advisor_probe() returns int language sql as $$ select 1 $$")
    try:
        ours = appkit_lints(stack, tmp_path)
    finally:
        sql(stack, "drop function appkit._advisor_probe()")
    assert any("function_search_path_mutable" in line and "_advisor_probe" in line for line in ours), ours
