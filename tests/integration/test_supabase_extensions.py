"""Supabase's pre-installed extensions and search path, and seed users made with
``crypt(pw, gen_salt('bf'))`` signing in through the official auth client."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from supabase_auth.errors import AuthApiError

from tests.auth_support import client, local_only, new_email
from tests.support import StackHandle

#: the seed-file snippet Supabase projects copy (auth.users + auth.identities, pgcrypto's crypt)
SEED_USER = """
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
  raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token, email_change,
  email_change_token_new, recovery_token)
values ('00000000-0000-0000-0000-000000000000', %(id)s, 'authenticated', 'authenticated', %(email)s,
  crypt(%(pw)s, gen_salt('bf')), now(), '{"provider":"email","providers":["email"]}', '{}', now(), now(),
  '', '', '', '');
insert into auth.identities (id, user_id, provider_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
values (gen_random_uuid(), %(id)s, %(id)s::text, jsonb_build_object('sub', %(id)s::text, 'email', %(email)s::text),
  'email', now(), now(), now());
"""


def test_extensions_of_a_fresh_supabase_project_are_in_schema_extensions(db: psycopg.Connection) -> None:
    rows = dict(db.execute(
        "select extname, extnamespace::regnamespace::text from pg_extension").fetchall())
    for name in ("uuid-ossp", "pgcrypto", "pg_stat_statements"):
        assert rows.get(name) == "extensions", rows
    # preloaded as on Supabase, so the view answers (`supabase inspect db outliers` reads it)
    assert db.execute("select count(*) >= 0 from extensions.pg_stat_statements").fetchone() == (True,)


def test_extensions_is_on_the_owner_roles_search_path(stack: StackHandle, db: psycopg.Connection) -> None:
    assert "extensions" in str(db.execute("show search_path").fetchone())
    table = f"ext_{uuid.uuid4().hex[:8]}"
    # a migration as Supabase users write it: no schema prefix on the extension functions
    db.execute(f"create table public.{table} (id uuid primary key default uuid_generate_v4(), "
               f"token text default encode(gen_random_bytes(8), 'hex'), d bytea default digest('x', 'sha256'))")
    try:
        row = db.execute(f"insert into public.{table} default values returning id, token").fetchone()
        assert row is not None and row[0].version == 4 and len(row[1]) == 16
    finally:
        db.execute(f"drop table public.{table}")


def seed_user(db: psycopg.Connection, email: str, password: str) -> uuid.UUID:
    uid = uuid.uuid4()
    for statement in SEED_USER.split(";\n")[:2]:
        db.execute(statement, {"id": uid, "email": email, "pw": password})
    return uid


def stored_hash(db: psycopg.Connection, uid: uuid.UUID) -> str:
    row = db.execute("select encrypted_password from auth.users where id = %s", (uid,)).fetchone()
    assert row is not None
    return str(row[0])


def test_seed_user_hashed_with_crypt_signs_in(stack: StackHandle, db: psycopg.Connection) -> None:
    email, password = new_email("seed"), "seed-password-1"
    uid = seed_user(db, email, password)
    # the SQL check seed files and admin scripts use works for the hashes crypt makes here
    check = "select encrypted_password = crypt(%s, encrypted_password) from auth.users where id = %s"
    assert db.execute(check, (password, uid)).fetchone() == (True,)
    assert db.execute(check, ("wrong", uid)).fetchone() == (False,)

    auth = client(stack)
    with pytest.raises(AuthApiError) as info:
        auth.sign_in_with_password({"email": email, "password": "wrong-password"})
    assert (info.value.status, info.value.code) == (400, "invalid_credentials")
    res = auth.sign_in_with_password({"email": email, "password": password})
    assert res.user is not None and res.user.id == str(uid) and res.session is not None

    # signing in again works (locally the first sign-in has replaced the seed hash by bcrypt)
    client(stack).sign_in_with_password({"email": email, "password": password})
    with pytest.raises(AuthApiError):
        client(stack).sign_in_with_password({"email": email, "password": password + "x"})


def test_seed_hash_is_upgraded_to_bcrypt_at_first_sign_in(stack: StackHandle, db: psycopg.Connection) -> None:
    local_only(stack)
    email, password = new_email("seed"), "seed-password-2"
    uid = seed_user(db, email, password)
    assert stored_hash(db, uid).startswith("$pbkdf2-sha256$4096$")
    with pytest.raises(AuthApiError):
        client(stack).sign_in_with_password({"email": email, "password": "not-it"})
    assert stored_hash(db, uid).startswith("$pbkdf2-sha256$")  # a failed attempt changes nothing
    client(stack).sign_in_with_password({"email": email, "password": password})
    upgraded = stored_hash(db, uid)
    assert upgraded.startswith("$2") and len(upgraded) == 60
    client(stack).sign_in_with_password({"email": email, "password": password})
    # bcrypt cannot be computed by the embedded server's shim: a clear error, not a silent false
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="bcrypt"):
        db.execute("select crypt(%s, encrypted_password) from auth.users where id = %s", (password, uid))


def test_crypt_and_gen_salt_bad_input(stack: StackHandle, db: psycopg.Connection) -> None:
    local_only(stack)
    cases = [
        ("select gen_salt('nope')", psycopg.errors.InvalidParameterValue, "Unknown salt algorithm"),
        ("select gen_salt('bf', 3)", psycopg.errors.InvalidParameterValue, "Incorrect number of rounds"),
        ("select gen_salt('bf', 32)", psycopg.errors.InvalidParameterValue, "Incorrect number of rounds"),
        ("select gen_salt('md5')", psycopg.errors.FeatureNotSupported, "gen_salt"),
        ("select crypt('x', '')", psycopg.errors.InvalidParameterValue, "invalid salt"),
        ("select crypt('x', '$pbkdf2-sha256$0$c2FsdA')", psycopg.errors.InvalidParameterValue, "invalid salt"),
        ("select crypt('x', '$pbkdf2-sha256$abc$c2FsdA')", psycopg.errors.InvalidParameterValue, "invalid salt"),
    ]
    for sql, error, fragment in cases:
        with pytest.raises(error, match=fragment):
            db.execute(sql)
    assert db.execute("select crypt(null, gen_salt('bf')) is null").fetchone() == (True,)  # strict


@pytest.mark.parametrize("bad", [
    "$pbkdf2-sha256$4096$!!!$abc", "$pbkdf2-sha256$99999999$c2FsdA$c2FsdA", "$pbkdf2-sha256$x$y$z",
    "$pbkdf2-sha256$4096$c2FsdA$", "$pbkdf2-sha256$4096$c2FsdA",
])
def test_a_corrupt_seed_hash_never_signs_in(stack: StackHandle, db: psycopg.Connection, bad: str) -> None:
    local_only(stack)
    email = new_email("corrupt")
    uid = seed_user(db, email, "whatever-1")
    db.execute("update auth.users set encrypted_password = %s where id = %s", (bad, uid))
    with pytest.raises(AuthApiError) as info:
        client(stack).sign_in_with_password({"email": email, "password": "whatever-1"})
    assert (info.value.status, info.value.code) == (400, "invalid_credentials")
    assert stored_hash(db, uid) == bad
