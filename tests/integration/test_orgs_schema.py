"""appkit's schema shipped into a project (init / schema add / schema status), and the
migration-vs-schema check: a database built from the bundled migrations (by `appkit db
migrate` and by the real Supabase CLI's `db push`) has exactly what the SDK and policies expect."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from appkit.db.bundled import bundled_migrations, project_copies
from appkit.local.base_schema import apply_base_schema
from tests.support import StackHandle, run_cli

# What the SDK, the CLI and the policies rely on. Column: (type, nullable).
TABLES: dict[str, dict[str, tuple[str, bool]]] = {
    "organizations": {
        "id": ("uuid", False), "name": ("text", False), "slug": ("text", False), "metadata": ("jsonb", False),
        "created_by": ("uuid", True), "created_at": ("timestamp with time zone", False),
        "updated_at": ("timestamp with time zone", False),
    },
    "memberships": {
        "org_id": ("uuid", False), "user_id": ("uuid", False), "role": ("text", False),
        "created_at": ("timestamp with time zone", False),
    },
    "role_permissions": {"role": ("text", False), "permission": ("text", False)},
    "invitations": {
        "id": ("uuid", False), "org_id": ("uuid", False), "email": ("text", True), "role": ("text", False),
        "token_hash": ("bytea", False), "invited_by": ("uuid", True), "created_at": ("timestamp with time zone", False),
        "expires_at": ("timestamp with time zone", False), "accepted_at": ("timestamp with time zone", True),
        "accepted_by": ("uuid", True), "revoked_at": ("timestamp with time zone", True),
    },
}
POLICIES = {
    ("organizations", "organizations_read", "SELECT"), ("organizations", "organizations_update", "UPDATE"),
    ("organizations", "organizations_delete", "DELETE"), ("memberships", "memberships_read", "SELECT"),
    ("role_permissions", "role_permissions_read", "SELECT"), ("invitations", "invitations_read", "SELECT"),
}
# name -> (arguments, security definer, volatility)
FUNCTIONS: dict[str, tuple[str, bool, str]] = {
    "role_rank": ("role text", False, "i"),
    "org_role": ("org_id uuid", True, "s"),
    "has_org_role": ("org_id uuid, min_role text", True, "s"),
    "has_org_permission": ("org_id uuid, permission text", True, "s"),
    "org_ids_with_role": ("min_role text", True, "s"),
    "create_organization": ("name text, slug text, metadata jsonb DEFAULT '{}'::jsonb, owner_id uuid DEFAULT NULL::uuid",
                            True, "v"),
    "org_members": ("org_id uuid", True, "s"),
    "add_member": ("org_id uuid, user_id uuid, role text", True, "v"),
    "set_member_role": ("org_id uuid, user_id uuid, role text", True, "v"),
    "remove_member": ("org_id uuid, user_id uuid", True, "v"),
    "leave_organization": ("org_id uuid", True, "v"),
    "transfer_ownership": ("org_id uuid, user_id uuid", True, "v"),
    "create_invitation": ("org_id uuid, role text, email text DEFAULT NULL::text, "
                          "expires_in_seconds integer DEFAULT 604800", True, "v"),
    "lookup_invitation": ("token text", True, "s"),
    "accept_invitation": ("token text", True, "v"),
    "revoke_invitation": ("invitation_id uuid", True, "v"),
    "custom_access_token_hook": ("event jsonb", True, "s"),
}
DEFAULT_PERMISSIONS = {
    "owner": {"org.read", "members.read", "org.update", "members.manage", "invitations.manage", "billing.manage",
              "org.delete", "ownership.transfer"},
    "admin": {"org.read", "members.read", "org.update", "members.manage", "invitations.manage"},
    "member": {"org.read", "members.read"},
    "viewer": {"org.read", "members.read"},
}


def _url(base: str, dbname: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + dbname


@pytest.fixture()
def fresh_db(stack: StackHandle) -> Iterator[str]:
    """A new database on the stack's server with only Supabase's base schema."""
    if stack.workdir is None:
        pytest.skip("creates databases on the local stack's server")
    name = f"appkit_fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = _url(stack.db_url, name)
    try:
        apply_base_schema(url)
        yield url
    finally:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def status_json(workdir: Path, db_url: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli("schema", "status", "--workdir", str(workdir), "--db-url", db_url, "-o", "json",
                   env={"SUPABASE_URL": ""})
    assert not proc.stderr.strip() or proc.returncode == 1, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_init_ships_the_schema_and_status_follows_migrate(tmp_path: Path, fresh_db: str) -> None:
    proc = run_cli("init", "--workdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    copies = project_copies(tmp_path / "supabase" / "migrations")
    assert set(copies) == {b.key for b in bundled_migrations()}
    for b in bundled_migrations():
        assert copies[b.key].read_text() == b.sql
    assert '"appkit"' in (tmp_path / "supabase" / "config.toml").read_text()

    rc, before = status_json(tmp_path, fresh_db)
    assert rc == 0 and {m["state"] for m in before["migrations"]} == {"missing"}
    assert before["exposed"] is True  # from config.toml
    human = run_cli("schema", "status", "--workdir", str(tmp_path), "--db-url", fresh_db, env={"SUPABASE_URL": ""})
    assert "missing" in human.stdout and "appkit db migrate" in human.stdout

    assert run_cli("db", "migrate", "--workdir", str(tmp_path), "--db-url", fresh_db).returncode == 0
    rc, after = status_json(tmp_path, fresh_db)
    assert rc == 0 and {m["state"] for m in after["migrations"]} == {"applied"}
    assert [m["file"] for m in after["migrations"]] == [copies[b.key].name for b in bundled_migrations()]

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("update supabase_migrations.schema_migrations set statements = statements || 'select 1'::text "
                     "where name = 'appkit_0010_orgs'")
    rc, tampered = status_json(tmp_path, fresh_db)
    assert rc == 1
    assert {m["name"]: m["state"] for m in tampered["migrations"]}["appkit_0010_orgs"] == "changed"


def test_schema_add_brings_missing_files_and_edits_config_minimally(tmp_path: Path) -> None:
    sb = tmp_path / "supabase"
    (sb / "migrations").mkdir(parents=True)
    config = ('# my project\nproject_id = "mine"\n\n[api]\n# exposed schemas\nschemas = ["public", "graphql_public"]'
              '  # keep me\nport = 54321\n\n[db]\nport = 54322\n')
    (sb / "config.toml").write_text(config)
    (sb / "migrations" / "20250101000000_notes.sql").write_text("create table public.notes (id int);")
    first = bundled_migrations()[0]
    (sb / "migrations" / f"20240101000000_{first.key}.sql").write_text(first.sql)  # shipped by an older appkit

    proc = run_cli("schema", "add", "--workdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    edited = (sb / "config.toml").read_text()
    assert edited == config.replace('"graphql_public"]', '"graphql_public", "appkit"]')
    copies = project_copies(sb / "migrations")
    assert set(copies) == {b.key for b in bundled_migrations()}
    assert copies[first.key].name.startswith("20240101000000_")  # not copied twice
    new_versions = [p.name.split("_")[0] for k, p in copies.items() if k != first.key]
    assert all(v > "20250101000000" for v in new_versions)  # after the project's own migrations

    again = run_cli("schema", "add", "--workdir", str(tmp_path))
    assert again.returncode == 0 and "already has every" in again.stdout
    assert (sb / "config.toml").read_text() == edited


@pytest.mark.parametrize("case", ["no-config", "bad-toml", "bad-schemas", "no-workdir"])
def test_schema_add_bad_input(tmp_path: Path, case: str) -> None:
    sb = tmp_path / "supabase"
    sb.mkdir()
    workdir = str(tmp_path)
    if case == "bad-toml":
        (sb / "config.toml").write_text("[api\nschemas = [")
    elif case == "bad-schemas":
        (sb / "config.toml").write_text('[api]\nschemas = "public"\n')
    elif case == "no-workdir":
        workdir = str(tmp_path / "nope")
    proc = run_cli("schema", "add", "--workdir", workdir)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (sb / "migrations").exists() or not list((sb / "migrations").iterdir())  # nothing half-written


def test_schema_status_bad_input(tmp_path: Path) -> None:
    proc = run_cli("schema", "status", "--workdir", str(tmp_path), env={"SUPABASE_DB_URL": ""})
    assert proc.returncode == 1 and "not running" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("schema", "status", "--workdir", str(tmp_path), "--db-url", "postgresql://nobody@127.0.0.1:1/x")
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_schema_status_checks_the_api(stack: StackHandle, tmp_path: Path) -> None:
    proc = run_cli("schema", "status", "--workdir", str(tmp_path), "--db-url", stack.db_url,
                   "--api-url", stack.api_url, "-o", "json", env={"SUPABASE_ANON_KEY": stack.anon_key})
    data = json.loads(proc.stdout)
    assert data["exposed"] is True and data["checked"] == f"API {stack.api_url}"


def _introspect(conn: psycopg.Connection[tuple[Any, ...]]) -> dict[str, Any]:
    columns: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, typ, nullable in conn.execute(
        "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'appkit' and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped"
    ).fetchall():
        columns.setdefault(table, {})[column] = (typ, nullable)
    rls = {r[0] for r in conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'appkit' and c.relkind = 'r' and c.relrowsecurity").fetchall()}
    policies = {(r[0], r[1], r[2]) for r in conn.execute(
        "select tablename, policyname, cmd from pg_policies where schemaname = 'appkit'").fetchall()}
    functions = {r[0]: (r[1], r[2], r[3], r[4]) for r in conn.execute(
        "select p.proname, pg_get_function_arguments(p.oid), p.prosecdef, p.provolatile, p.proconfig "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'appkit'").fetchall()}
    perms: dict[str, set[str]] = {}
    for role, perm in conn.execute("select role, permission from appkit.role_permissions").fetchall():
        perms.setdefault(role, set()).add(perm)
    triggers = {r[0] for r in conn.execute(
        "select t.tgname from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n "
        "on n.oid = c.relnamespace where n.nspname = 'appkit' and not t.tgisinternal").fetchall()}
    return {"columns": columns, "rls": rls, "policies": policies, "functions": functions, "perms": perms,
            "triggers": triggers}


def _assert_matches(got: dict[str, Any]) -> None:
    for table, cols in TABLES.items():
        assert got["columns"].get(table) == cols, table
    assert set(TABLES) <= got["rls"], "every appkit table has RLS enabled"
    assert got["rls"] == set(got["columns"]), "a table without RLS"
    assert got["policies"] >= POLICIES
    for name, (args, definer, volatility) in FUNCTIONS.items():
        assert name in got["functions"], name
        g_args, g_definer, g_vol, g_config = got["functions"][name]
        assert (g_args, g_definer, g_vol) == (args, definer, volatility), name
    for name, (_, _, _, config) in got["functions"].items():
        assert config is not None and 'search_path=""' in config, f"appkit.{name} has no fixed search_path"
    assert got["perms"] == DEFAULT_PERMISSIONS
    assert {"organizations_touch", "memberships_keep_an_owner", "organizations_need_an_owner"} <= got["triggers"]


def test_migrations_build_the_schema_the_code_expects(tmp_path: Path, fresh_db: str) -> None:
    assert run_cli("init", "--workdir", str(tmp_path)).returncode == 0
    assert run_cli("db", "migrate", "--workdir", str(tmp_path), "--db-url", fresh_db).returncode == 0
    with psycopg.connect(fresh_db) as conn:
        _assert_matches(_introspect(conn))


def test_the_test_stack_has_the_same_schema(db: psycopg.Connection[tuple[Any, ...]]) -> None:
    _assert_matches(_introspect(db))


def supabase_cli() -> str:
    path = os.environ.get("APPKIT_SUPABASE_CLI") or "/tmp/sbcli/node_modules/.bin/supabase"
    if not Path(path).exists():
        pytest.fail(f"the Supabase CLI is not installed at {path} (set APPKIT_SUPABASE_CLI)")
    return path


def test_supabase_db_push_applies_the_same_files(tmp_path: Path, fresh_db: str) -> None:
    assert run_cli("init", "--workdir", str(tmp_path)).returncode == 0
    proc = subprocess.run([supabase_cli(), "db", "push", "--db-url", f"{fresh_db}?sslmode=disable", "--yes"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with psycopg.connect(fresh_db) as conn:
        _assert_matches(_introspect(conn))
    rc, status = status_json(tmp_path, fresh_db)  # the CLI's history agrees with appkit's reading of it
    assert rc == 0 and {m["state"] for m in status["migrations"]} == {"applied"}
