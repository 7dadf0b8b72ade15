"""The smaller companions Supabase projects create: pgjwt over the hmac shim (checked against
PyJWT both ways), the pg_graphql / pgsodium / pgtap stand-ins that let their migrations apply,
retired or impossible extensions answered with one line naming the alternative, and seed
files ending in VACUUM."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import psycopg
import pytest

from appkit.db import MigrationRunner, discover_migrations
from appkit.errors import MigrationError
from appkit.local.base_schema import apply_base_schema
from tests.support import StackHandle

pytestmark = pytest.mark.integration

SECRET = "a-secret-of-at-least-sixty-four-bytes-for-hs512-0123456789abcdefghij"


@pytest.fixture()
def fresh(stack: StackHandle) -> Iterator[str]:
    """A new database with Supabase's base schema, on the session stack's server."""
    name = f"ext_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = stack.db_url.rsplit("/", 1)[0] + "/" + name
    apply_base_schema(url)
    yield url
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def one(url: str, query: str, params: object = None) -> object:
    """The first row of ``query`` (its only value when it has one column); None for a command."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        if cur.description is None:
            return None
        row = cur.fetchone()
        assert row is not None
        return row[0] if len(row) == 1 else row


def test_pgjwt_sign_matches_pgjwts_documented_token_and_pyjwt(fresh: str) -> None:
    one(fresh, "create extension pgjwt with schema extensions")
    token = one(fresh, """select extensions.sign('{"sub":"1234567890","name":"John Doe","admin":true}', 'secret')""")
    assert token == ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4i"
                     "OnRydWV9.TJVA95OrM7E2cBab30RMHrHDcEfxjoYZgeFONFh7HgQ")  # pgjwt's README
    for alg in ("HS256", "HS384", "HS512"):
        signed = one(fresh, "select extensions.sign(%s::json, %s, %s)", ('{"role": "authenticated"}', SECRET, alg))
        assert jwt.decode(str(signed), SECRET, algorithms=[alg]) == {"role": "authenticated"}


@pytest.mark.parametrize(("times", "secret", "valid"), [
    ({"exp": 600}, SECRET, True),
    ({}, SECRET, True),  # no exp/nbf: an open window
    ({"exp": 600}, SECRET + "x", False),  # wrong secret
    ({"exp": -10}, SECRET, False),  # expired
    ({"nbf": 600}, SECRET, False),  # not yet valid
])
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_pgjwt_verify_checks_signature_and_window(fresh: str, times: dict[str, int], secret: str, valid: bool,
                                                   alg: str) -> None:
    one(fresh, "create extension pgjwt with schema extensions")
    claims = {"sub": "u1", **{k: int(time.time()) + v for k, v in times.items()}}  # seconds from now
    token = jwt.encode(claims, SECRET, algorithm=alg)
    header, payload, ok = one(fresh, "select * from extensions.verify(%s, %s, %s)", (token, secret, alg))  # type: ignore[misc]
    assert (header, payload, ok) == ({"alg": alg, "typ": "JWT"}, claims, valid)


def test_pgjwt_bad_input(fresh: str) -> None:
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute("drop extension pgcrypto cascade")
        with pytest.raises(psycopg.errors.UndefinedObject, match='required extension "pgcrypto" is not installed'):
            conn.execute("create extension pgjwt with schema extensions")
        conn.execute("create extension pgjwt with schema extensions cascade")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match='Cannot use "": No such hash algorithm'):
            conn.execute("select extensions.sign('{}', 'k', 'RS256')")
        with pytest.raises(psycopg.Error):
            conn.execute("select * from extensions.verify('not-a-token', 'k')")


def test_a_migration_creating_the_supabase_extensions_applies(fresh: str, tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "20240101000000_remote_schema.sql").write_text("""
create extension if not exists "pgsodium" with schema "pgsodium";
create extension if not exists "pg_graphql" with schema "graphql";
create extension if not exists "pgtap" with schema "extensions";
create extension if not exists "pgjwt" with schema "extensions";
create extension if not exists "pg_cron" with schema "pg_catalog";
comment on schema public is '@graphql({"inflect_names": true})';
grant usage on schema graphql to anon, authenticated;
""")
    assert [m.name for m in MigrationRunner(fresh).apply(discover_migrations(d))] == ["remote_schema"]
    answer = one(fresh, "select graphql.resolve('{ profilesCollection { edges { node { id } } } }')")
    assert answer == {"data": None, "errors": [
        {"message": "pg_graphql is not available in the appkit local stack; use the REST API (/rest/v1)"}]}
    assert one(fresh, "select length(pgsodium.randombytes_buf(24))") == 24
    assert 0 <= int(one(fresh, "select pgsodium.randombytes_uniform(10)")) < 10  # type: ignore[call-overload]


def test_pgtap_core_assertions_print_tap(fresh: str) -> None:
    with psycopg.connect(fresh) as conn:
        conn.execute("create extension pgtap with schema extensions")
        out: list[str] = []
        for q in ("select extensions.plan(7)", "select extensions.ok(true, 'works')",
                  "select extensions.is(1, 2, 'one is two')", "select extensions.has_table('auth', 'users', 'users')",
                  "select extensions.has_column('auth', 'users', 'email', 'email')",
                  "select extensions.throws_ok('select 1/0', '22012', 'div')",
                  "select extensions.lives_ok('select 1', 'lives')", "select extensions.isnt('a'::text, 'b', 'differ')",
                  "select * from extensions.finish()"):
            out += [str(r[0]) for r in conn.execute(q.encode()).fetchall()]
    assert "\n".join(out).splitlines() == [
        "1..7", "ok 1 - works", "not ok 2 - one is two", '#     Failed test 2: "one is two"', "#         have: 1",
        "#         want: 2", "ok 3 - users", "ok 4 - email", "ok 5 - div", "ok 6 - lives", "ok 7 - differ",
        "# Looks like you failed 1 test of 7",
    ]


@pytest.mark.parametrize(("extension", "alternative"), [
    ("plv8", "write the function in PL/pgSQL or SQL, or move the JavaScript to an Edge Function"),
    ("plcoffee", "write the function in PL/pgSQL or SQL"),
    ("plls", "write the function in PL/pgSQL or SQL"),
    ("timescaledb", "use native table partitioning"),
    ("postgis", "appkit dev --db-url"),
])
def test_retired_or_impossible_extensions_answer_with_one_line(fresh: str, tmp_path: Path, extension: str,
                                                              alternative: str) -> None:
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "20240101000000_ext.sql").write_text(f"create table keep_out (id int);\ncreate extension if not exists {extension};\n")
    with pytest.raises(MigrationError) as info:
        MigrationRunner(fresh).apply(discover_migrations(d))
    message = str(info.value)
    assert message.startswith(f"20240101000000_ext.sql:2: 0A000: {extension} is not available")
    assert alternative in message and "\n" not in message
    assert one(fresh, "select to_regclass('public.keep_out')") is None  # nothing half-done


def test_a_seed_ending_in_vacuum_applies(fresh: str, tmp_path: Path) -> None:
    one(fresh, "create table public.seeded (id int)")
    seed = tmp_path / "seed.sql"
    seed.write_text("insert into public.seeded values (1), (2);\n-- tidy up\nvacuum analyze public.seeded;\n"
                    "create index concurrently seeded_id on public.seeded (id);\n")
    assert MigrationRunner(fresh).seed([seed]) == [seed]
    assert one(fresh, "select count(*) from public.seeded") == 2
    assert one(fresh, "select count(*) from pg_indexes where indexname = 'seeded_id'") == 1
    assert one(fresh, "select count(*) from supabase_migrations.seed_files where path = 'seed.sql'") == 1


def test_vacuum_inside_a_seed_fails_and_rolls_back(fresh: str, tmp_path: Path) -> None:
    one(fresh, "create table public.seeded (id int)")
    seed = tmp_path / "seed.sql"
    seed.write_text("insert into public.seeded values (1);\nvacuum public.seeded;\ninsert into public.seeded values (2);\n")
    with pytest.raises(MigrationError, match=r"seed.sql:2: 25001: VACUUM cannot run inside a transaction block"):
        MigrationRunner(fresh).seed([seed])
    assert one(fresh, "select count(*) from public.seeded") == 0
