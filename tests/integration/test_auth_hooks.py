"""Auth hooks through the official client: custom_access_token as a Postgres function
(Supabase's RBAC guide), its payload, GoTrue's checks of its answer, errors and timeouts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from supabase_auth.errors import AuthApiError

from appkit.local.auth import totp
from tests.auth_support import client, new_email
from tests.support import StackHandle, start_stack, write_project

HOOK_CONFIG = """
[auth.hook.custom_access_token]
enabled = true
uri = "pg-functions://postgres/public/custom_access_token_hook"
[auth.hook.before_user_created]
enabled = true
uri = "pg-functions://postgres/public/before_user_created_hook"
[auth.hook.password_verification_attempt]
enabled = true
uri = "pg-functions://postgres/public/password_attempt_hook"
[auth.hook.mfa_verification_attempt]
enabled = true
uri = "pg-functions://postgres/public/mfa_attempt_hook"
[auth.hook.send_email]
enabled = true
uri = "pg-functions://postgres/public/send_hook"
[auth.hook.send_sms]
enabled = true
uri = "pg-functions://postgres/public/send_hook"
"""

#: Supabase's RBAC guide: a role table and a hook adding `user_role`; `user_metadata.hook`
#: switches the answer to each failure GoTrue handles
MIGRATION = """
create table public.user_roles (user_id uuid primary key references auth.users on delete cascade, role text not null);
alter table public.user_roles enable row level security;
create policy "auth admin reads roles" on public.user_roles as permissive for select
  to supabase_auth_admin using (true);
create table public.hook_calls (event jsonb not null, at timestamptz default now());
alter table public.hook_calls enable row level security;
create policy "auth admin logs calls" on public.hook_calls for insert to supabase_auth_admin with check (true);

create function public.custom_access_token_hook(event jsonb) returns jsonb language plpgsql as $$
declare
  claims jsonb := event -> 'claims';
  mode text := event -> 'claims' -> 'user_metadata' ->> 'hook';
  r text;
begin
  insert into public.hook_calls (event) values (event);
  select role into r from public.user_roles where user_id = (event ->> 'user_id')::uuid;
  claims := jsonb_set(claims, '{user_role}', coalesce(to_jsonb(r), 'null'::jsonb));
  case mode
    when 'error' then return '{"error": {"http_code": 403, "message": "not today"}}';
    when 'error500' then return '{"error": {"message": "the hook broke"}}';
    when 'drop_aal' then return jsonb_build_object('claims', claims - 'aal');
    when 'bad_exp' then return jsonb_build_object('claims', jsonb_set(claims, '{exp}', '"soon"'));
    when 'no_claims' then return '{"something": 1}';
    when 'sleep' then perform pg_sleep(3);
    when 'raise' then raise exception 'hook exploded';
    else null;
  end case;
  return jsonb_set(event, '{claims}', claims);
end
$$;
-- before_user_created: refuse one domain; password_verification_attempt: three strikes
create function public.before_user_created_hook(event jsonb) returns jsonb language plpgsql as $$
begin
  insert into public.hook_calls (event) values (event);
  if event -> 'user' ->> 'email' like '%@blocked.example' then
    return '{"error": {"http_code": 400, "message": "Sign-ups from this domain are not allowed"}}';
  end if;
  return '{}';
end
$$;
create table public.failed_logins (user_id uuid not null, at timestamptz default now());
alter table public.failed_logins enable row level security;
create policy "auth admin counts" on public.failed_logins for all to supabase_auth_admin using (true) with check (true);
create function public.password_attempt_hook(event jsonb) returns jsonb language plpgsql as $$
declare
  failures int;
begin
  insert into public.hook_calls (event) values (event);
  if (event ->> 'valid')::boolean then
    return '{"decision": "continue"}';
  end if;
  insert into public.failed_logins (user_id) values ((event ->> 'user_id')::uuid);
  select count(*) into failures from public.failed_logins where user_id = (event ->> 'user_id')::uuid;
  if failures >= 3 then
    return '{"decision": "reject", "message": "Too many failed attempts", "should_logout_user": true}';
  end if;
  return '{"decision": "continue"}';
end
$$;
create function public.mfa_attempt_hook(event jsonb) returns jsonb language plpgsql as $$
begin
  insert into public.hook_calls (event) values (event);
  if not (event ->> 'valid')::boolean then
    return '{"decision": "reject", "message": "MFA locked"}';
  end if;
  return '{"decision": "continue"}';
end
$$;
grant execute on function public.mfa_attempt_hook to supabase_auth_admin;
create function public.send_hook(event jsonb) returns jsonb language plpgsql as $$
begin
  if event -> 'user' ->> 'email' like 'undeliverable%' then
    return '{"error": {"http_code": 422, "message": "mail provider down"}}';
  end if;
  insert into public.hook_calls (event) values (event);
  return '{}';
end
$$;
grant execute on function public.send_hook to supabase_auth_admin;
grant usage on schema public to supabase_auth_admin;
grant execute on function public.before_user_created_hook, public.password_attempt_hook to supabase_auth_admin;
grant select, insert on public.failed_logins to supabase_auth_admin;
grant execute on function public.custom_access_token_hook to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook from authenticated, anon, public;
grant select on public.user_roles to supabase_auth_admin;
grant insert on public.hook_calls to supabase_auth_admin;
"""


@pytest.fixture(scope="module")
def hstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    workdir: Path = tmp_path_factory.mktemp("hooks")
    write_project(workdir, extra_config=HOOK_CONFIG)
    (workdir / "supabase" / "migrations" / "20240101000000_rbac.sql").write_text(MIGRATION)
    handle = start_stack(workdir)
    try:
        yield handle
    finally:
        handle.stop()


def sign_up(stack: StackHandle, mode: str | None = None) -> tuple[str, str]:
    email = new_email("hook")
    meta = {"hook": mode} if mode else {}
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,"
            " raw_app_meta_data, raw_user_meta_data, created_at, updated_at)"
            " values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',"
            " %s, crypt('hook-pass-1', gen_salt('bf')), now(), '{\"provider\":\"email\"}', %s, now(), now())",
            (email, json.dumps(meta)))
    return email, "hook-pass-1"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_hook_adds_claims_to_every_token(hstack: StackHandle) -> None:
    email, password = sign_up(hstack)
    auth = client(hstack)
    with psycopg.connect(hstack.db_url, autocommit=True) as conn:
        uid = conn.execute("select id from auth.users where email = %s", (email,)).fetchone()[0]  # type: ignore[index]
        conn.execute("insert into public.user_roles values (%s, 'moderator')", (uid,))
    session = auth.sign_in_with_password({"email": email, "password": password}).session
    assert session is not None
    claims = claims_of(session.access_token)
    assert claims["user_role"] == "moderator" and claims["sub"] == str(uid)
    # the official client accepts the token: /user answers with it
    assert auth.get_user(session.access_token).user.id == str(uid)
    # the refresh grant runs the hook too
    refreshed = auth.refresh_session(session.refresh_token).session
    assert refreshed is not None and claims_of(refreshed.access_token)["user_role"] == "moderator"
    # GoTrue's payload
    with psycopg.connect(hstack.db_url, autocommit=True) as conn:
        events = [r[0] for r in conn.execute(
            "select event from public.hook_calls where event ->> 'user_id' = %s"
            " and event -> 'metadata' ->> 'name' = 'customize-access-token' order by at", (str(uid),))]
    assert [e["authentication_method"] for e in events] == ["password", "token_refresh"]
    first = events[0]
    assert set(first) == {"metadata", "user_id", "claims", "authentication_method"}
    assert first["metadata"]["name"] == "customize-access-token" and first["metadata"]["uuid"]
    for name in ("aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous", "amr"):
        assert name in first["claims"], name


def test_a_user_without_a_role_gets_null(hstack: StackHandle) -> None:
    email, password = sign_up(hstack)
    session = client(hstack).sign_in_with_password({"email": email, "password": password}).session
    assert session is not None and claims_of(session.access_token)["user_role"] is None


@pytest.mark.parametrize(("mode", "status", "code", "message"), [
    ("error", 403, "unknown", "not today"),
    ("error500", 500, "unexpected_failure", "the hook broke"),
    ("drop_aal", 500, "unexpected_failure", "(root): aal is required"),
    ("bad_exp", 500, "unexpected_failure", "exp: Invalid type. Expected: integer, given: string"),
    ("no_claims", 500, "unexpected_failure", "output claims field is missing"),
    ("raise", 500, "unexpected_failure", "Error running hook URI"),
    ("sleep", 500, "unexpected_failure", "Error running hook URI"),  # statement_timeout 2 s
])
def test_hook_failures_answer_as_gotrue(hstack: StackHandle, mode: str, status: int, code: str,
                                        message: str) -> None:
    email, password = sign_up(hstack, mode)
    with pytest.raises(AuthApiError) as info:
        client(hstack).sign_in_with_password({"email": email, "password": password})
    assert (info.value.status, info.value.code) == (status, code)
    assert message in info.value.message
    # nothing half-written: no session was created for the refused sign-in
    with psycopg.connect(hstack.db_url, autocommit=True) as conn:
        sessions = conn.execute("select count(*) from auth.sessions s join auth.users u on u.id = s.user_id"
                                " where u.email = %s", (email,)).fetchone()
    assert sessions == (0,)


def test_the_hook_is_not_callable_by_api_roles(hstack: StackHandle) -> None:
    with psycopg.connect(hstack.db_url, autocommit=True) as conn, conn.transaction():
        conn.execute("set local role authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select public.custom_access_token_hook('{}'::jsonb)")


def hook_events(stack: StackHandle, name: str) -> list[dict[str, Any]]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "select event from public.hook_calls where event -> 'metadata' ->> 'name' = %s order by at", (name,))]


def test_before_user_created_sees_the_user_and_can_refuse(hstack: StackHandle) -> None:
    email = new_email("fresh")
    res = client(hstack).sign_up({"email": email, "password": "hook-pass-1", "options": {"data": {"plan": "pro"}}})
    assert res.user is not None
    event = next(e for e in hook_events(hstack, "before-user-created") if e["user"]["email"] == email)
    assert event["user"]["id"] == res.user.id  # the id the user is then created with
    assert event["user"]["user_metadata"] == {"plan": "pro"} and event["user"]["is_anonymous"] is False
    assert event["user"]["app_metadata"] == {"provider": "email", "providers": ["email"]}
    anon = client(hstack).sign_in_anonymously()
    assert anon.user is not None
    assert any(e["user"]["id"] == anon.user.id and e["user"]["is_anonymous"]
               for e in hook_events(hstack, "before-user-created"))

    blocked = f"someone-{email.split('@')[0]}@blocked.example"
    with pytest.raises(AuthApiError) as info:
        client(hstack).sign_up({"email": blocked, "password": "hook-pass-1"})
    assert (info.value.status, info.value.message) == (400, "Sign-ups from this domain are not allowed")
    with pytest.raises(AuthApiError):
        client(hstack).sign_in_with_otp({"email": blocked})
    with psycopg.connect(hstack.db_url, autocommit=True) as conn:  # nothing was created
        assert conn.execute("select count(*) from auth.users where email = %s", (blocked,)).fetchone() == (0,)


def test_password_verification_attempt_can_reject_and_sign_out(hstack: StackHandle) -> None:
    email, password = sign_up(hstack)
    auth = client(hstack)
    session = auth.sign_in_with_password({"email": email, "password": password}).session
    assert session is not None
    for _ in range(2):
        with pytest.raises(AuthApiError) as wrong:
            client(hstack).sign_in_with_password({"email": email, "password": "not-the-password"})
        assert (wrong.value.status, wrong.value.code, wrong.value.message) == (
            400, "invalid_credentials", "Invalid login credentials")
    with pytest.raises(AuthApiError) as rejected:  # the third failure: the hook's decision and message
        client(hstack).sign_in_with_password({"email": email, "password": "not-the-password"})
    assert (rejected.value.status, rejected.value.code, rejected.value.message) == (
        400, "invalid_credentials", "Too many failed attempts")
    # should_logout_user: the earlier session is gone, its refresh token refused
    with pytest.raises(AuthApiError):
        client(hstack).refresh_session(session.refresh_token)
    events = [e for e in hook_events(hstack, "password-verification") if e["user_id"] == str(session.user.id)]
    assert [e["valid"] for e in events] == [True, False, False, False]


def test_mfa_verification_attempt_rejects_and_signs_out(hstack: StackHandle) -> None:
    email, password = sign_up(hstack)
    auth = client(hstack)
    auth.sign_in_with_password({"email": email, "password": password})
    factor = auth.mfa.enroll({"factor_type": "totp", "friendly_name": "app"})
    assert factor.totp is not None
    ok = auth.mfa.verify({"factor_id": factor.id, "challenge_id": auth.mfa.challenge({"factor_id": factor.id}).id,
                          "code": totp.code_at(factor.totp.secret)})
    assert ok.access_token
    wrong = str((int(totp.code_at(factor.totp.secret)) + 1) % 1000000).zfill(6)
    with pytest.raises(AuthApiError) as info:
        auth.mfa.verify({"factor_id": factor.id, "challenge_id": auth.mfa.challenge({"factor_id": factor.id}).id,
                         "code": wrong})
    assert (info.value.status, info.value.code, info.value.message) == (403, "mfa_verification_rejected", "MFA locked")
    events = [e for e in hook_events(hstack, "mfa-verification") if e["factor_id"] == factor.id]
    assert [(e["factor_type"], e["valid"]) for e in events] == [("totp", True), ("totp", False)]
    with psycopg.connect(hstack.db_url, autocommit=True) as conn:  # signed out everywhere
        assert conn.execute("select count(*) from auth.sessions s join auth.users u on u.id = s.user_id"
                            " where u.email = %s", (email,)).fetchone() == (0,)


def test_send_email_and_send_sms_hooks_take_the_messages(hstack: StackHandle) -> None:
    email, _ = sign_up(hstack)
    client(hstack).sign_in_with_otp({"email": email, "options": {"should_create_user": False}})
    sent = [e for e in hook_events(hstack, "send-email") if e["user"]["email"] == email]
    assert len(sent) == 1
    data = sent[0]["email_data"]
    assert data["email_action_type"] == "magiclink" and len(data["token"]) == 6 and data["token_hash"]
    assert data["site_url"] == "http://127.0.0.1:3000"
    # the code the hook got signs the user in
    verified = client(hstack).verify_otp({"email": email, "token": data["token"], "type": "email"})
    assert verified.session is not None
    with psycopg.connect(hstack.db_url, autocommit=True) as conn:  # handed to the hook, not captured
        assert conn.execute("select count(*) from _appkit.auth_messages where recipient = %s", (email,)).fetchone() == (0,)
        phone = "1555" + str(uuid.uuid4().int)[:7]
        conn.execute("update auth.users set phone = %s, phone_confirmed_at = now() where email = %s", (phone, email))
    client(hstack).sign_in_with_otp({"phone": phone, "options": {"should_create_user": False}})
    sms = [e for e in hook_events(hstack, "send-sms") if e["sms"]["phone"] == phone]
    assert len(sms) == 1 and len(sms[0]["sms"]["otp"]) == 6
    assert client(hstack).verify_otp({"phone": phone, "token": sms[0]["sms"]["otp"], "type": "sms"}).session


def test_a_send_hook_error_fails_the_request(hstack: StackHandle) -> None:
    email = f"undeliverable-{uuid.uuid4().hex[:8]}@example.com"
    with psycopg.connect(hstack.db_url, autocommit=True) as conn:
        conn.execute("insert into auth.users (instance_id, id, aud, role, email, email_confirmed_at, created_at,"
                     " updated_at) values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(),"
                     " 'authenticated', 'authenticated', %s, now(), now(), now())", (email,))
    with pytest.raises(AuthApiError) as info:
        client(hstack).sign_in_with_otp({"email": email, "options": {"should_create_user": False}})
    assert (info.value.status, info.value.message) == (422, "mail provider down")
