"""``appkit orgs ...`` as an admin runs it (service role, against the test stack): every command,
Rich tables and ``-o json``, and one-line errors for bad input with nothing half-written."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from tests.orgs_support import make_user, wait_for_appkit_schema
from tests.support import StackHandle, run_cli


@pytest.fixture(scope="module")
def env(stack: StackHandle) -> dict[str, str]:
    wait_for_appkit_schema(stack)
    return {"SUPABASE_URL": stack.api_url, "SUPABASE_SERVICE_ROLE_KEY": stack.service_role_key,
            "SUPABASE_ANON_KEY": stack.anon_key}


_runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``appkit orgs ARGS`` in this process (the CLI's startup is most of a subprocess's cost);
    test_subprocess_round_trip runs it as a user would."""
    from appkit_cli.main import app

    result = _runner.invoke(app, ["orgs", *args], env={**env, "COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["appkit", "orgs", *args], result.exit_code, result.stdout, result.stderr)


def ok(env: dict[str, str], *args: str) -> str:
    proc = cli(env, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def js(env: dict[str, str], *args: str) -> Any:
    return json.loads(ok(env, *args, "-o", "json"))


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str = "") -> None:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and fragment.lower() in err.lower(), err


def test_every_command(env: dict[str, str], stack: StackHandle) -> None:
    owner, other = make_user(stack), make_user(stack)
    slug = f"cli-{uuid.uuid4().hex[:10]}"
    created = js(env, "create", "Cli Org", slug, "--owner", owner.email, "--metadata", '{"tier": 1}')
    assert created[0]["slug"] == slug and created[0]["metadata"] == {"tier": 1}
    assert created[0]["created_by"] == owner.id
    listed = js(env, "list")
    assert slug in {o["slug"] for o in listed}
    assert slug in ok(env, "list")

    shown = js(env, "show", slug)
    assert shown["members"] == [{"org_id": shown["id"], "user_id": owner.id, "role": "owner",
                                 "created_at": shown["members"][0]["created_at"], "email": owner.email}]
    assert owner.email in ok(env, "show", slug)

    assert "Added" in ok(env, "add", slug, other.email, "--role", "viewer")
    assert {m["email"]: m["role"] for m in js(env, "members", slug)} == {owner.email: "owner", other.email: "viewer"}
    ok(env, "role", slug, other.email, "admin")
    ok(env, "transfer", slug, other.id)
    assert {m["email"]: m["role"] for m in js(env, "members", slug)} == {owner.email: "admin", other.email: "owner"}
    ok(env, "remove", slug, owner.email)
    assert [m["email"] for m in js(env, "members", slug)] == [other.email]

    ok(env, "update", slug, "--name", "Renamed", "--slug", slug + "-x")
    slug += "-x"
    assert js(env, "show", slug)["name"] == "Renamed"

    inv = js(env, "invite", slug, "--role", "viewer", "--email", "Guest@Example.com")[0]
    assert len(inv["token"]) == 64 and inv["email"] == "guest@example.com"
    text = ok(env, "invite", slug)
    assert "token: " in text
    listed_inv = js(env, "invitations", slug)
    assert len(listed_inv) == 2 and all("token" not in i for i in listed_inv)
    assert {i["status"] for i in listed_inv} == {"pending"}
    ok(env, "revoke", inv["id"])
    assert len(js(env, "invitations", slug, "--pending")) == 1
    assert "revoked" in ok(env, "invitations", slug)

    assert "Deleted" in ok(env, "delete", slug, "--yes")
    with psycopg.connect(stack.db_url) as conn:
        assert conn.execute("select count(*) from appkit.organizations where slug = %s", (slug,)).fetchone() == (0,)


def test_bad_input(env: dict[str, str], stack: StackHandle) -> None:
    owner = make_user(stack)
    slug = f"cli-bad-{uuid.uuid4().hex[:8]}"
    ok(env, "create", "Bad Input", slug, "--owner", owner.id)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        def counts() -> Any:
            return conn.execute("select (select count(*) from appkit.organizations), "
                                "(select count(*) from appkit.memberships), (select count(*) from appkit.invitations)"
                                ).fetchone()

        before = counts()
        unknown = str(uuid.uuid4())
        cases: list[tuple[tuple[str, ...], str]] = [
            (("create", "X", "Bad Slug", "--owner", owner.id), "invalid slug"),
            (("create", "X", f"ok-{uuid.uuid4().hex[:6]}", "--owner", "nobody@example.com"), "no user"),
            (("create", "X", f"ok-{uuid.uuid4().hex[:6]}", "--owner", "not-a-uuid"), "invalid user"),
            (("create", "X", f"ok-{uuid.uuid4().hex[:6]}", "--owner", unknown), "not found"),
            (("create", "X", slug, "--owner", owner.id), "taken"),
            (("create", "X", f"ok-{uuid.uuid4().hex[:6]}", "--owner", owner.id, "--metadata", "[1]"), "JSON object"),
            (("create", "X", f"ok-{uuid.uuid4().hex[:6]}", "--owner", owner.id, "--metadata", "{bad"), "not valid JSON"),
            (("show", "No Such Org!"), "invalid slug"),
            (("show", "no-such-org-" + uuid.uuid4().hex[:6]), "not found"),
            (("show", unknown), "not found"),
            (("update", slug), "nothing to update"),
            (("update", slug, "--slug", "-bad"), "invalid slug"),
            (("update", unknown, "--name", "x"), "not found"),
            (("delete", unknown, "--yes"), "not found"),
            (("delete", slug), "--yes"),
            (("members", unknown), "not found"),
            (("add", slug, owner.id, "--role", "boss"), "unknown organization role"),
            (("add", slug, owner.id), "already a member"),
            (("add", slug, "ghost@example.com"), "no user"),
            (("add", unknown, owner.id), "not found"),
            (("remove", slug, owner.id), "at least one owner"),
            (("remove", slug, "stranger@example.com"), "not a member"),
            (("remove", slug, "bob"), "invalid user"),
            (("role", slug, owner.id, "king"), "unknown organization role"),
            (("role", slug, owner.id, "admin"), "at least one owner"),
            (("role", slug, unknown, "admin"), "no such member"),
            (("transfer", slug, unknown), "must be a member"),
            (("invite", slug, "--role", "owner"), "admin, member or viewer"),
            (("invite", slug, "--email", "nope"), "invalid e-mail"),
            (("invite", slug, "--expires-in", "5"), "between 60"),
            (("invite", slug, "--send"), "needs the invitee"),
            (("invite", unknown), "not found"),
            (("invitations", unknown), "not found"),
            (("revoke", "not-a-uuid"), "invalid invitation"),
            (("revoke", unknown), "not found"),
        ]
        wrong = []
        for args, fragment in cases:
            proc = cli(env, *args)
            err = proc.stderr.strip()
            if proc.returncode == 0 or not err.startswith("error:") or len(err.splitlines()) != 1 \
                    or "Traceback" in err or fragment.lower() not in err.lower():
                wrong.append(f"{' '.join(args)} -> exit {proc.returncode}: {err or proc.stdout}")
        assert not wrong, "\n".join(wrong)
        assert counts() == before  # nothing half-written


def test_subprocess_round_trip(env: dict[str, str], stack: StackHandle) -> None:
    owner = make_user(stack)
    slug = f"cli-sub-{uuid.uuid4().hex[:8]}"
    proc = run_cli("orgs", "create", "Sub", slug, "--owner", owner.email, env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("orgs", "members", slug, "-o", "json", env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["email"] == owner.email
    assert_one_line_error(run_cli("orgs", "show", "Bad Slug", env=env), "invalid slug")


def test_credentials_are_required(tmp_path: Path) -> None:
    proc = run_cli("orgs", "list", "--workdir", str(tmp_path),
                   env={"SUPABASE_URL": "", "SUPABASE_SERVICE_ROLE_KEY": ""})
    assert_one_line_error(proc, "not running")
    proc = run_cli("orgs", "list", env={"SUPABASE_URL": "http://127.0.0.1:1", "SUPABASE_SERVICE_ROLE_KEY": "k"})
    assert_one_line_error(proc, "reach")


def test_uses_the_running_local_stack(stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("needs the local stack's workdir")
    proc = run_cli("orgs", "list", "--workdir", str(stack.workdir), "-o", "json",
                   env={"SUPABASE_URL": "", "SUPABASE_SERVICE_ROLE_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), list)
