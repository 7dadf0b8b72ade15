"""The real Supabase CLI's project, unchanged: ``supabase init`` / ``migration new`` make it,
``appkit start`` serves it with no extra environment, and the CLI's own database and storage
commands agree with appkit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from supabase_auth import SyncGoTrueClient, SyncMemoryStorage

from tests.support import free_port, run_cli

CLI_VERSION = "2.117.0"
CACHE = Path.home() / ".cache" / "appkit-tests" / "supabase-cli"
#: settings of `supabase init`'s config.toml read from env(...); none may be needed to start
TEMPLATE_ENV = ("OPENAI_API_KEY", "S3_HOST", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY",
                "SUPABASE_AUTH_SMS_TWILIO_AUTH_TOKEN", "SUPABASE_AUTH_EXTERNAL_APPLE_SECRET", "SUPABASE_DB_URL")

SEED_ID = "a0000000-0000-4000-8000-000000000001"
MIGRATION = """
create table public.notes (
  id uuid primary key default uuid_generate_v4(),
  owner uuid not null default auth.uid() references auth.users (id),
  body text not null
);
alter table public.notes enable row level security;
create policy "own notes" on public.notes for all to authenticated
  using ((select auth.uid()) = owner) with check ((select auth.uid()) = owner);
"""
SEED = f"""
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
  raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token, email_change,
  email_change_token_new, recovery_token)
values ('00000000-0000-0000-0000-000000000000', '{SEED_ID}', 'authenticated', 'authenticated',
  'seed@example.com', crypt('seed-password', gen_salt('bf')), now(),
  '{{"provider":"email","providers":["email"]}}', '{{}}', now(), now(), '', '', '', '');
insert into auth.identities (id, user_id, provider_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
values (gen_random_uuid(), '{SEED_ID}', '{SEED_ID}',
  '{{"sub":"{SEED_ID}","email":"seed@example.com"}}', 'email', now(), now(), now());
insert into public.notes (owner, body) values ('{SEED_ID}', 'seeded note');
"""


def supabase_cli() -> str:
    """The Supabase CLI binary: $APPKIT_SUPABASE_CLI, else one npm installed in the test cache."""
    path = os.environ.get("APPKIT_SUPABASE_CLI")
    if path:
        if not Path(path).is_file():
            pytest.fail(f"APPKIT_SUPABASE_CLI={path} does not exist")
        return path
    binary = CACHE / "node_modules" / ".bin" / "supabase"
    if binary.is_file():
        return str(binary)
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the Supabase CLI is needed: set APPKIT_SUPABASE_CLI or install npm")
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "i", "-E", "--no-audit", "--no-fund", f"supabase@{CLI_VERSION}"],
                          cwd=CACHE, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not binary.is_file():
        pytest.fail(f"npm could not install supabase@{CLI_VERSION}: {done.stderr.strip()[-500:]}")
    return str(binary)


def sb(cli: str, *args: str, cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "DO_NOT_TRACK": "1"})
    assert done.returncode == 0, f"supabase {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def cli_versions(listing: str) -> tuple[list[str], list[str]]:
    """(local, remote) versions from `supabase migration list`'s table."""
    local: list[str] = []
    remote: list[str] = []
    for line in listing.splitlines():
        cells = [re.sub(r"\D", "", c) for c in line.split("|")]
        if len(cells) == 3 and (cells[0] or cells[1]):
            local += [cells[0]] if cells[0] else []
            remote += [cells[1]] if cells[1] else []
    return local, remote


def appkit_status(project: Path) -> dict[str, str]:
    done = run_cli("db", "status", "--workdir", str(project), "--json")
    assert done.returncode == 0, done.stderr
    return {str(row["version"]): str(row["state"]) for row in json.loads(done.stdout)}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    cli = supabase_cli()
    root = tmp_path_factory.mktemp("sbproject")
    sb(cli, "init", cwd=root)
    config = root / "supabase" / "config.toml"
    text = config.read_text()
    assert 'openai_api_key = "env(OPENAI_API_KEY)"' in text  # the template this test is about
    # free ports instead of 54321/54322, nothing else changed
    text = re.sub(r"(?m)^port = 54321$", f"port = {free_port()}", text)
    text = re.sub(r"(?m)^port = 54322$", f"port = {free_port()}", text)
    config.write_text(text)
    created = sb(cli, "migration", "new", "create_notes", cwd=root)
    migration = next((root / "supabase" / "migrations").glob("*_create_notes.sql"))
    assert migration.name in created
    migration.write_text(MIGRATION)
    (root / "supabase" / "seed.sql").write_text(SEED)

    env = {k: v for k, v in os.environ.items() if k not in TEMPLATE_ENV}
    started = subprocess.run([sys.executable, "-m", "appkit_cli", "start", "--workdir", str(root)],
                             capture_output=True, text=True, timeout=180, env=env)
    assert started.returncode == 0, started.stderr
    assert "Traceback" not in started.stderr and "WARN" not in started.stderr, started.stderr
    info = run_cli("status", "--workdir", str(root), "-o", "env")
    assert info.returncode == 0, info.stderr
    values = dict(line.split("=", 1) for line in info.stdout.splitlines() if "=" in line)
    try:
        yield root, cli, {k: v.strip('"') for k, v in values.items()}
    finally:
        run_cli("stop", "--workdir", str(root), "--no-backup")


def test_seeded_user_signs_in_and_sees_the_seeded_row(project: tuple[Path, str, dict[str, str]]) -> None:
    _, _, env = project
    auth = SyncGoTrueClient(url=env["API_URL"] + "/auth/v1", headers={"apikey": env["ANON_KEY"]},
                            auto_refresh_token=False, storage=SyncMemoryStorage())
    res = auth.sign_in_with_password({"email": "seed@example.com", "password": "seed-password"})
    assert res.user is not None and res.user.id == SEED_ID and res.session is not None
    with psycopg.connect(env["DB_URL"]) as conn:
        row = conn.execute("select body, id from public.notes").fetchone()
    assert row is not None and row[0] == "seeded note" and row[1].version == 4


def test_migration_list_and_db_push_agree_with_appkit(project: tuple[Path, str, dict[str, str]]) -> None:
    root, cli, env = project
    db_url = env["DB_URL"] + "?sslmode=disable"
    first = next((root / "supabase" / "migrations").glob("*_create_notes.sql")).name.split("_")[0]
    local, remote = cli_versions(sb(cli, "migration", "list", "--db-url", db_url, cwd=root))
    assert local == remote == [first]
    assert appkit_status(root) == {first: "applied"}

    sb(cli, "migration", "new", "second", cwd=root)
    second_file = next((root / "supabase" / "migrations").glob("*_second.sql"))
    second_file.write_text("create table public.second (id uuid primary key default uuid_generate_v4());\n")
    second = second_file.name.split("_")[0]
    assert appkit_status(root) == {first: "applied", second: "pending"}
    local, remote = cli_versions(sb(cli, "migration", "list", "--db-url", db_url, cwd=root))
    assert (local, remote) == ([first, second], [first])

    sb(cli, "db", "push", "--db-url", db_url, "--yes", cwd=root)
    assert appkit_status(root) == {first: "applied", second: "applied"}
    local, remote = cli_versions(sb(cli, "migration", "list", "--db-url", db_url, cwd=root))
    assert local == remote == [first, second]


def test_storage_cp_and_ls_round_trip_a_file(project: tuple[Path, str, dict[str, str]]) -> None:
    root, cli, env = project
    made = httpx.post(env["API_URL"] + "/storage/v1/bucket", json={"name": "docs"},
                      headers={"Authorization": f"Bearer {env['SERVICE_ROLE_KEY']}"})
    assert made.status_code == 200, made.text
    payload = bytes(range(256)) * 40
    (root / "upload.bin").write_bytes(payload)
    sb(cli, "storage", "cp", "upload.bin", "ss:///docs/dir/upload.bin", "--local", "--experimental", cwd=root)
    assert "docs/" in sb(cli, "storage", "ls", "ss:///", "--local", "--experimental", cwd=root).split()
    assert sb(cli, "storage", "ls", "ss:///docs/", "--local", "--experimental", cwd=root).split()[-1] == "dir/"
    assert "upload.bin" in sb(cli, "storage", "ls", "ss:///docs/dir/", "--local", "--experimental", cwd=root).split()
    sb(cli, "storage", "cp", "ss:///docs/dir/upload.bin", "back.bin", "--local", "--experimental", cwd=root)
    assert (root / "back.bin").read_bytes() == payload


def test_inspect_db_outliers_reads_pg_stat_statements(project: tuple[Path, str, dict[str, str]]) -> None:
    root, cli, env = project
    with psycopg.connect(env["DB_URL"]) as conn:
        conn.execute("select count(*) from public.notes")
    out = sb(cli, "inspect", "db", "outliers", "--db-url", env["DB_URL"] + "?sslmode=disable", cwd=root)
    assert "public.notes" in out or "notes" in out, out
