"""An enabled ``[auth.hook.*]`` whose function or URL does not exist is reported when the stack
starts (a warning naming the hook and what is missing); hooks that exist are not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import free_port, run_cli, start_stack, write_project

pytestmark = pytest.mark.integration

SECRET = "v1,whsec_" + "a" * 40


def test_missing_hook_targets_are_reported_at_start(tmp_path: Path) -> None:
    dead = free_port()
    write_project(tmp_path, extra_config=f"""
[auth.hook.custom_access_token]
enabled = true
uri = "pg-functions://postgres/public/no_such_hook"
[auth.hook.before_user_created]
enabled = true
uri = "pg-functions://postgres/public/existing_hook"
[auth.hook.send_email]
enabled = true
uri = "http://127.0.0.1:{dead}/hooks/send-email"
secrets = "{SECRET}"
[auth.hook.send_sms]
enabled = false
uri = "pg-functions://postgres/public/also_missing"
""")
    (tmp_path / "supabase" / "migrations" / "20240101000000_hook.sql").write_text(
        "create function public.existing_hook(event jsonb) returns jsonb language sql as $$ select '{}'::jsonb $$;")
    h = start_stack(tmp_path)
    log = tmp_path / "stack-test.log"
    try:
        deadline = time.monotonic() + 20
        while "send_email" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = log.read_text()
    finally:
        h.stop()
        run_cli("stop", "--workdir", str(tmp_path))
    assert ("[auth.hook.custom_access_token] is enabled but function public.no_such_hook(jsonb) does not exist"
            in text)
    assert f"[auth.hook.send_email] is enabled but http://127.0.0.1:{dead} does not accept connections" in text
    assert "existing_hook" not in text
    assert "also_missing" not in text  # disabled hooks are not checked
