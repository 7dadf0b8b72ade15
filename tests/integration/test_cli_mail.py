"""`appkit mail` lists what the local auth service captured instead of sending."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.integration.test_cli import assert_one_line_error
from tests.support import run_cli, write_project


def test_mail_lists_captured_messages(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    email = f"mail-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"apikey": stack.anon_key}
    r = httpx.post(f"{stack.api_url}/auth/v1/signup", json={"email": email, "password": "s3cret-pass"}, headers=headers)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{stack.api_url}/auth/v1/recover", json={"email": email}, headers=headers)
    assert r.status_code == 200, r.text

    proc = run_cli("mail", "--workdir", str(tmp_path), "--db-url", stack.db_url, "--to", email, "--json")
    assert proc.returncode == 0, proc.stderr
    [msg] = json.loads(proc.stdout)
    assert msg["recipient"] == email and msg["type"] == "recovery"
    assert msg["otp"] and msg["otp"].isdigit()
    assert msg["link"] and "/auth/v1/verify" in msg["link"]

    table = run_cli("mail", "--workdir", str(tmp_path), "--db-url", stack.db_url, "--to", email)
    assert table.returncode == 0 and msg["otp"] in table.stdout
    none = run_cli("mail", "--workdir", str(tmp_path), "--db-url", stack.db_url, "--to", "nobody@example.com")
    assert none.returncode == 0 and "No messages" in none.stdout


def test_mail_bad_input(tmp_path: Path) -> None:
    proc = run_cli("mail", "--workdir", str(tmp_path), "--limit", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert_one_line_error(run_cli("mail", "--workdir", str(tmp_path)), "run `appkit init` first")
    write_project(tmp_path)
    assert_one_line_error(run_cli("mail", "--workdir", str(tmp_path)), "not running")
