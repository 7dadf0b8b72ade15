"""Supabase's base schema, emulated: a migration written for Supabase applies unchanged
and RLS with auth.uid() behaves as on Supabase."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

SUPABASE_STYLE_MIGRATION = """
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;

create table public.profiles (
  id uuid not null references auth.users on delete cascade,
  username text unique,
  primary key (id)
);
alter table public.profiles enable row level security;
create policy "own profile" on public.profiles for select using ((select auth.uid()) = id);
create policy "insert own" on public.profiles for insert with check ((select auth.uid()) = id);

create function public.handle_new_user() returns trigger language plpgsql security definer
set search_path = '' as $$
begin
  insert into public.profiles (id, username) values (new.id, new.raw_user_meta_data ->> 'username');
  return new;
end;
$$;
create trigger on_auth_user_created after insert on auth.users
  for each row execute procedure public.handle_new_user();

create table public.notes (
  id uuid primary key default extensions.uuid_generate_v4(),
  owner uuid not null default auth.uid() references auth.users (id),
  body text not null,
  token text default encode(extensions.gen_random_bytes(16), 'hex')
);
alter table public.notes enable row level security;
create policy "owner reads" on public.notes for select to authenticated using ((select auth.uid()) = owner);
create policy "owner writes" on public.notes for insert to authenticated with check ((select auth.uid()) = owner);

insert into storage.buckets (id, name, public) values ('avatars', 'avatars', false);
create policy "folder per user" on storage.objects for select to authenticated
  using (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
alter publication supabase_realtime add table public.notes;
"""


def _as(conn: psycopg.Connection, role: str, sub: uuid.UUID | None = None) -> None:
    claims = {"role": role, **({"sub": str(sub)} if sub else {})}
    conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                 (role, json.dumps(claims)))


@pytest.fixture(scope="module")
def schema(stack) -> tuple[uuid.UUID, uuid.UUID]:  # type: ignore[no-untyped-def]
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("drop table if exists public.notes, public.profiles cascade")
        conn.execute("drop function if exists public.handle_new_user cascade")
        conn.execute("delete from storage.buckets where id = 'avatars'")
        with conn.transaction():
            conn.execute(SUPABASE_STYLE_MIGRATION)
        a, b = uuid.uuid4(), uuid.uuid4()
        for uid, name in ((a, "alice"), (b, "bob")):
            conn.execute(
                "insert into auth.users (id, aud, role, email, raw_user_meta_data, created_at, updated_at) "
                "values (%s, 'authenticated', 'authenticated', %s, %s, now(), now())",
                (uid, f"{name}@example.com", json.dumps({"username": name})),
            )
        return a, b


def test_trigger_on_auth_users_creates_profile(stack, schema) -> None:  # type: ignore[no-untyped-def]
    a, _ = schema
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("select username from public.profiles where id = %s", (a,)).fetchone()
    assert row == ("alice",)


def test_rls_isolates_two_users(stack, schema) -> None:  # type: ignore[no-untyped-def]
    a, b = schema
    with psycopg.connect(stack.db_url) as conn:
        for uid, body in ((a, "from alice"), (b, "from bob")):
            with conn.transaction():
                _as(conn, "authenticated", uid)
                conn.execute("insert into public.notes (body) values (%s)", (body,))
        with conn.transaction():
            _as(conn, "authenticated", a)
            seen = conn.execute("select body, owner, length(token) from public.notes").fetchall()
            assert seen == [("from alice", a, 32)]
            assert conn.execute("select auth.uid(), auth.role()").fetchone() == (a, "authenticated")
        with conn.transaction():
            _as(conn, "authenticated", b)
            assert [r[0] for r in conn.execute("select body from public.notes")] == ["from bob"]
            assert conn.execute("select username from public.profiles").fetchall() == [("bob",)]
        with conn.transaction():
            _as(conn, "anon")
            assert conn.execute("select count(*) from public.notes").fetchone() == (0,)
        with conn.transaction():
            _as(conn, "service_role")
            assert conn.execute("select count(*) from public.notes").fetchone() == (2,)


def test_insert_for_another_user_is_denied(stack, schema) -> None:  # type: ignore[no-untyped-def]
    a, b = schema
    with psycopg.connect(stack.db_url) as conn:
        _as(conn, "authenticated", a)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into public.notes (owner, body) values (%s, 'forged')", (b,))


def test_storage_policy_with_foldername(stack, schema) -> None:  # type: ignore[no-untyped-def]
    a, b = schema
    with psycopg.connect(stack.db_url) as conn:
        conn.execute(
            "insert into storage.objects (bucket_id, name, owner) values ('avatars', %s, %s), ('avatars', %s, %s)",
            (f"{a}/me.png", a, f"{b}/me.png", b),
        )
        conn.commit()
        with conn.transaction():
            _as(conn, "authenticated", a)
            names = [r[0] for r in conn.execute("select name from storage.objects")]
        assert names == [f"{a}/me.png"]
        assert conn.execute(
            "select storage.foldername('a/b/c.txt'), storage.filename('a/b/c.txt'), storage.extension('a/b/c.tar.gz')"
        ).fetchone() == (["a", "b"], "c.txt", "gz")


def test_roles_and_attributes(stack) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(stack.db_url) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "select rolname, rolcanlogin, rolbypassrls, rolinherit from pg_roles where rolname = any(%s)",
            (["anon", "authenticated", "service_role", "authenticator"],),
        )}
        assert rows["anon"] == (False, False, False)
        assert rows["service_role"] == (False, True, False)
        assert rows["authenticator"] == (True, False, False)
        members = {r[0] for r in conn.execute(
            "select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid "
            "join pg_roles u on u.oid = m.member where u.rolname = 'authenticator'")}
        assert {"anon", "authenticated", "service_role"} <= members
        pubs = conn.execute("select count(*) from pg_publication where pubname = 'supabase_realtime'").fetchone()
        assert pubs == (1,)


def test_authenticator_logs_in_and_switches_role(stack) -> None:  # type: ignore[no-untyped-def]
    url = stack.db_url.replace("postgres:postgres@", "authenticator:postgres@", 1)
    with psycopg.connect(url) as conn:
        conn.execute("set local role anon")
        assert conn.execute("select current_user").fetchone() == ("anon",)


def test_extension_shims(stack) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(stack.db_url) as conn:
        v4, v1, v3, nil = conn.execute(
            "select extensions.uuid_generate_v4(), extensions.uuid_generate_v1(), "
            "extensions.uuid_generate_v3(extensions.uuid_ns_dns(), 'www.example.com'), extensions.uuid_nil()"
        ).fetchone()
        assert v4.version == 4 and v1.version == 1 and nil.int == 0
        # RFC 4122 test vector for v3(dns, "www.example.com")
        assert str(v3) == "5df41881-3aed-3515-88a7-2f4a814cf09e"
        digest, mac, rb = conn.execute(
            "select encode(extensions.digest('abc', 'sha256'), 'hex'), "
            "encode(extensions.hmac('what do ya want for nothing?', 'Jefe', 'sha256'), 'hex'), "
            "length(extensions.gen_random_bytes(100))"
        ).fetchone()
        assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        # RFC 4231 test case 2
        assert mac == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        assert rb == 100
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("select extensions.digest('abc', 'sha1')")


def test_rls_matrix_auth_oauth_clients(stack) -> None:  # type: ignore[no-untyped-def]
    """auth.oauth_clients (the OAuth server's clients): only the auth service's role reads or
    writes it; the API roles can do nothing, whatever their JWT says."""
    if stack.workdir is None:
        pytest.skip("the emulated base schema is local-only")
    client_id = uuid.uuid4()
    statements = {
        "select": "select count(*) from auth.oauth_clients",
        "insert": "insert into auth.oauth_clients (id, registration_type, redirect_uris, grant_types, client_type,"
                  f" token_endpoint_auth_method) values ('{uuid.uuid4()}', 'manual', '{{https://x.example}}',"
                  " '{authorization_code}', 'public', 'none')",
        "update": f"update auth.oauth_clients set client_name = 'x' where id = '{client_id}'",
        "delete": f"delete from auth.oauth_clients where id = '{client_id}'",
    }
    expected = {("supabase_auth_admin", op): True for op in statements}
    for actor in ("anon", "authenticated", "service_role"):
        for op in statements:
            expected[(actor, op)] = False
    seen: dict[tuple[str, str], bool] = {}
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into auth.oauth_clients (id, registration_type, redirect_uris, grant_types, client_type,"
                     " token_endpoint_auth_method) values (%s, 'manual', '{https://x.example}',"
                     " '{authorization_code}', 'public', 'none')", (client_id,))
        try:
            for (actor, op) in expected:
                try:
                    with conn.transaction(force_rollback=True):
                        _as(conn, actor, uuid.uuid4())
                        conn.execute(statements[op])
                    seen[(actor, op)] = True
                except psycopg.errors.InsufficientPrivilege:
                    seen[(actor, op)] = False
        finally:
            conn.execute("delete from auth.oauth_clients where id = %s", (client_id,))
    table = "\n".join(f"{actor:20} {op:7} expected={'allow' if want else 'deny':5} got="
                      f"{'allow' if seen[(actor, op)] else 'deny'}" for (actor, op), want in expected.items())
    assert seen == expected, "auth.oauth_clients RLS matrix:\n" + table
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        assert conn.execute("select relrowsecurity from pg_class where oid = 'auth.oauth_clients'::regclass"
                            ).fetchone() == (True,)
