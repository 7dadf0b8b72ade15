"""``appkit users`` against the local stack: every command, import/export round trips that keep
bcrypt hashes, and bad input (one line on stderr, non-zero exit, nothing half-done)."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from pathlib import Path

import bcrypt
import httpx
import psycopg
import pytest

from tests.integration.test_cli import assert_one_line_error
from tests.support import StackHandle, run_cli, write_project

PASSWORD = "correct-horse-battery-staple-1"


def users(stack: StackHandle, *args: str, env: dict[str, str] | None = None,
          input_text: str | None = None) -> tuple[int, str, str]:
    proc = run_cli("users", *args, "--workdir", str(stack.workdir), env=env)
    return proc.returncode, proc.stdout, proc.stderr


def ok_json(stack: StackHandle, *args: str) -> dict[str, object]:
    proc = run_cli("users", *args, "--workdir", str(stack.workdir), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def sign_in(stack: StackHandle, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=password", json={"email": email,
                      "password": password}, headers={"apikey": stack.anon_key}, timeout=10)


def email() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}@example.com"


def user_count(stack: StackHandle) -> int:
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("select count(*) from auth.users").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(autouse=True)
def _local(stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("the users CLI tests drive the local stack")


def test_user_lifecycle(stack: StackHandle) -> None:
    addr = email()
    made = ok_json(stack, "create", "--email", addr, "--password", PASSWORD, "--metadata", '{"full_name": "Ada"}',
                   "--claims", '{"plan": "free"}')
    uid = str(made["id"])
    assert made["email"] == addr and made["app_metadata"]["plan"] == "free"  # type: ignore[index]
    assert ok_json(stack, "show", addr)["id"] == uid
    assert ok_json(stack, "show", uid)["email"] == addr
    pretty = run_cli("users", "show", addr, "--workdir", str(stack.workdir))
    assert pretty.returncode == 0 and uid in pretty.stdout and "confirmed" in pretty.stdout
    changed = ok_json(stack, "update", addr, "--metadata", '{"city": "Paris"}')
    assert changed["user_metadata"]["city"] == "Paris"  # type: ignore[index]
    claims = ok_json(stack, "set-claims", uid, '{"plan": "pro", "admin": true}')
    assert claims["app_metadata"]["plan"] == "pro" and claims["app_metadata"]["admin"] is True  # type: ignore[index]
    assert sign_in(stack, addr, PASSWORD).status_code == 200
    code, out, err = users(stack, "ban", addr, "--for", "2h")
    assert code == 0 and "Banned" in out, err
    assert sign_in(stack, addr, PASSWORD).status_code == 400
    code, out, err = users(stack, "unban", addr)
    assert code == 0, err
    code, out, err = users(stack, "set-password", addr, "--password", "new-long-password-22")
    assert code == 0, err
    assert sign_in(stack, addr, PASSWORD).status_code == 400
    token = sign_in(stack, addr, "new-long-password-22").json()
    code, out, err = users(stack, "sign-out", addr)
    assert code == 0, err
    refresh = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=refresh_token",
                         json={"refresh_token": token["refresh_token"]}, headers={"apikey": stack.anon_key})
    assert refresh.status_code == 400
    code, out, err = users(stack, "delete", addr)
    assert code == 0 and uid in out, err
    assert_one_line_error(run_cli("users", "show", uid, "--workdir", str(stack.workdir)), "User not found")


def test_list_table_and_json(stack: StackHandle) -> None:
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        assert users(stack, "create", "--email", f"list-{tag}-{i}@example.com")[0] == 0
    data = ok_json(stack, "list", "--filter", tag, "--per-page", "2")
    assert data["total"] == 3 and len(data["users"]) == 2 and data["next_page"] == 2  # type: ignore[arg-type]
    code, out, _ = users(stack, "list", "--filter", tag)
    assert code == 0 and f"list-{tag}-0@example.com" in out and "3 of 3 user(s)" in out


def test_invite(stack: StackHandle) -> None:
    addr = email()
    data = ok_json(stack, "invite", addr, "--metadata", '{"team": "ops"}')
    assert data["email"] == addr and data["invited_at"]
    messages = httpx.get(f"{stack.api_url}/auth/v1/_appkit/messages", params={"to": addr},
                         headers={"apikey": stack.service_role_key,
                                  "Authorization": f"Bearer {stack.service_role_key}"}).json()
    assert messages, "the invitation was not sent"


def _hashed_users(n: int, tag: str) -> list[dict[str, object]]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    return [{"id": str(uuid.uuid4()), "email": f"imp-{tag}-{i}@example.com", "password_hash": hashed,
             "email_confirmed_at": "2024-01-02T03:04:05+00:00", "user_metadata": {"n": i},
             "app_metadata": {"plan": "pro"}, "created_at": "2023-05-01T00:00:00Z"} for i in range(n)]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_import_export_round_trip_keeps_hashes(stack: StackHandle, tmp_path: Path, fmt: str) -> None:
    tag = uuid.uuid4().hex[:8]
    rows = _hashed_users(20, tag)
    src = tmp_path / f"in.{fmt}"
    if fmt == "json":
        src.write_text(json.dumps({"users": rows}))
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["id", "email", "password_hash", "email_confirmed_at",
                                                 "user_metadata", "app_metadata", "created_at"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "user_metadata": json.dumps(r["user_metadata"]),
                             "app_metadata": json.dumps(r["app_metadata"])})
        src.write_text(out.getvalue())
    code, out_text, err = users(stack, "import", str(src))
    assert code == 0 and "Imported 20 user(s)" in out_text, err
    assert sign_in(stack, f"imp-{tag}-3@example.com", PASSWORD).status_code == 200
    shown = ok_json(stack, "show", f"imp-{tag}-3@example.com")
    assert shown["id"] == rows[3]["id"] and shown["app_metadata"]["plan"] == "pro"  # type: ignore[index]
    assert shown["created_at"].startswith("2023-05-01")  # type: ignore[union-attr]
    dst = tmp_path / f"out.{fmt}"
    code, out_text, err = users(stack, "export", str(dst))
    assert code == 0, err
    assert oct(dst.stat().st_mode & 0o777) == "0o600"
    text = dst.read_text()
    exported = json.loads(text)["users"] if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    mine = {e["email"]: e for e in exported if tag in (e["email"] or "")}
    assert len(mine) == 20
    assert mine[f"imp-{tag}-0@example.com"]["password_hash"] == rows[0]["password_hash"]
    # the export imports elsewhere as it is: delete and re-import from the export
    with psycopg.connect(stack.db_url) as conn:
        conn.execute("delete from auth.users where email like %s", (f"imp-{tag}-%",))
    code, out_text, err = users(stack, "import", str(dst), "--skip-existing")
    assert code == 0 and "Imported 20 user(s)" in out_text, err
    assert sign_in(stack, f"imp-{tag}-7@example.com", PASSWORD).status_code == 200


def test_export_to_stdout_and_import_from_stdin(stack: StackHandle) -> None:
    proc = run_cli("users", "export", "-", "--workdir", str(stack.workdir))
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout)["users"], list)


def test_import_through_the_admin_api(stack: StackHandle, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    src = tmp_path / "api.json"
    src.write_text(json.dumps(_hashed_users(5, tag)))
    env = {"SUPABASE_DB_URL": ""}
    proc = run_cli("users", "import", str(src), "--url", stack.api_url, "--service-role-key",
                   stack.service_role_key, "--workdir", str(tmp_path), env=env)
    assert proc.returncode == 0 and "Imported 5 user(s)" in proc.stdout, proc.stderr
    assert sign_in(stack, f"imp-{tag}-4@example.com", PASSWORD).status_code == 200
    # a conflict undoes the run's own inserts
    rows = _hashed_users(6, uuid.uuid4().hex[:8])
    rows[5]["email"] = f"imp-{tag}-0@example.com"
    src.write_text(json.dumps(rows))
    before = user_count(stack)
    proc = run_cli("users", "import", str(src), "--url", stack.api_url, "--service-role-key",
                   stack.service_role_key, "--workdir", str(tmp_path), env=env)
    assert_one_line_error(proc, "already been registered")
    assert user_count(stack) == before


def test_import_is_all_or_nothing(stack: StackHandle, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    rows = _hashed_users(10, tag)
    existing = email()
    assert users(stack, "create", "--email", existing)[0] == 0
    rows[9]["email"] = existing
    src = tmp_path / "conflict.json"
    src.write_text(json.dumps(rows))
    before = user_count(stack)
    assert_one_line_error(run_cli("users", "import", str(src), "--workdir", str(stack.workdir)),
                          f"a user with email {existing} already exists")
    assert user_count(stack) == before
    code, out, err = users(stack, "import", str(src), "--skip-existing")
    assert code == 0 and "Imported 9 user(s), skipped 1 existing." in out, err


@pytest.mark.parametrize(("content", "name", "fragment"), [
    ("not json", "x.json", "not valid JSON"),
    ('{"users": [{"email": "bad"}]}', "x.json", "record 1: invalid email"),
    ('[{"email": "a@b.co", "password_hash": "plain"}]', "x.json", "not a bcrypt hash"),
    ('[{"email": "a@b.co", "id": "12"}]', "x.json", "invalid id"),
    ('[{"email": "a@b.co"}, {"email": "A@b.co"}]', "x.json", "repeats record 1"),
    ('[{"email": "a@b.co", "wat": 1}]', "x.json", "unknown field"),
    ('[{"phone": "+1 555"}]', "x.json", "invalid phone"),
    ('[{"email": "a@b.co", "created_at": "yesterday"}]', "x.json", "ISO 8601"),
    ("email,bogus\na@b.co,1\n", "x.csv", "unknown CSV column"),
    ("email,user_metadata\na@b.co,{nope\n", "x.csv", "user_metadata is not JSON"),
    ("[]", "x.txt", "cannot tell the format"),
    ("[]", "x.json", "holds no users"),
])
def test_import_rejects_bad_files(stack: StackHandle, tmp_path: Path, content: str, name: str,
                                  fragment: str) -> None:
    src = tmp_path / name
    src.write_text(content)
    before = user_count(stack)
    assert_one_line_error(run_cli("users", "import", str(src), "--workdir", str(stack.workdir)), fragment)
    assert user_count(stack) == before


def test_bad_input_is_one_line(stack: StackHandle, tmp_path: Path) -> None:
    wd = str(stack.workdir)
    unknown = str(uuid.uuid4())
    for args, fragment in [
        (("show", unknown), "User not found"),
        (("delete", unknown), "User not found"),
        (("ban", unknown), "User not found"),
        (("show", "nobody"), "neither a user id nor an email"),
        (("show", "nobody@example.com"), "no user with email"),
        (("set-claims", unknown, "[1]"), "must be a JSON object"),
        (("set-claims", unknown, "{"), "not valid JSON"),
        (("create",), "give --email or --phone"),
        (("create", "--email", "not-an-email"), "email"),
        (("update", unknown), "nothing to update"),
        (("ban", unknown, "--for", "forever"), "invalid duration"),
        (("list", "--url", "http://127.0.0.1:9"), "--url and --service-role-key go together"),
    ]:
        assert_one_line_error(run_cli("users", *args, "--workdir", wd), fragment)
    addr = email()
    assert users(stack, "create", "--email", addr)[0] == 0
    assert_one_line_error(run_cli("users", "create", "--email", addr, "--workdir", wd), "already been registered")
    assert_one_line_error(run_cli("users", "export", str(tmp_path / "x.json"), "--db-url",
                                  "postgresql://postgres:postgres@127.0.0.1:9/postgres", "--workdir", wd),
                          "cannot connect to the database")
    (tmp_path / "in.json").write_text(json.dumps([{"email": email()}]))
    assert_one_line_error(run_cli("users", "import", str(tmp_path / "in.json"), "--db-url",
                                  "postgresql://postgres:postgres@127.0.0.1:9/postgres", "--workdir", wd),
                          "cannot connect to the database")
    assert not (tmp_path / "x.json").exists()
    existing = tmp_path / "exists.json"
    existing.write_text("keep")
    assert_one_line_error(run_cli("users", "export", str(existing), "--workdir", wd), "already exists")
    assert existing.read_text() == "keep"


def test_no_running_stack(tmp_path: Path) -> None:
    write_project(tmp_path)
    env = {k: "" for k in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY") if k in os.environ}
    assert_one_line_error(run_cli("users", "list", "--workdir", str(tmp_path), env=env), "run `appkit start`")


def test_unreachable_hosted_project(tmp_path: Path) -> None:
    proc = run_cli("users", "list", "--url", "http://127.0.0.1:9", "--service-role-key", "k",
                   "--workdir", str(tmp_path))
    assert_one_line_error(proc, "could not reach the server")
