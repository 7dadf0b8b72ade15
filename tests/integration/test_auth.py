"""The local auth service driven by the official supabase_auth client (sync and async)."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import psycopg
import pytest
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from appkit.local.auth import totp
from appkit.local.auth.mail import list_messages
from tests.auth_support import (
    admin_client,
    async_client,
    client,
    last_message,
    local_only,
    new_email,
    new_phone,
)

pytestmark = pytest.mark.integration


def claims_of(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


def signed_up(stack, email: str | None = None, password: str = "secret-pass-1", **options):  # type: ignore[no-untyped-def]
    c = client(stack)
    email = email or new_email()
    res = c.sign_up({"email": email, "password": password, "options": options})  # type: ignore[typeddict-item]
    assert res.session is not None
    return c, res, email


# -- sign up / sign in ---------------------------------------------------------------------
def test_signup_returns_session_with_supabase_claims(stack) -> None:  # type: ignore[no-untyped-def]
    _, res, email = signed_up(stack)
    assert res.user is not None and res.session is not None
    assert res.user.email == email
    assert res.user.email_confirmed_at is not None
    assert res.user.app_metadata == {"provider": "email", "providers": ["email"]}
    assert [i.provider for i in res.user.identities or []] == ["email"]
    claims = jwt.decode(res.session.access_token, stack.jwt_secret, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == res.user.id
    assert claims["email"] == email
    assert claims["role"] == "authenticated"
    assert claims["aal"] == "aal1"
    assert claims["iss"] == stack.api_url + "/auth/v1"
    assert claims["amr"][0]["method"] == "password"
    assert claims["is_anonymous"] is False
    assert claims["exp"] - claims["iat"] == 3600
    assert set(claims) >= {"aud", "exp", "iat", "iss", "sub", "email", "phone", "app_metadata", "user_metadata",
                           "role", "aal", "amr", "session_id", "is_anonymous"}
    assert res.session.expires_in == 3600 and res.session.token_type == "bearer"


def test_signup_rows_live_in_auth_tables_and_trigger_fires(stack, db) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:8]
    table, fn, trg = f"auth_test_profiles_{suffix}", f"auth_test_fn_{suffix}", f"auth_test_trg_{suffix}"
    db.execute(f"create table public.{table} (id uuid primary key, name text)")
    db.execute(f"create function public.{fn}() returns trigger language plpgsql security definer set search_path = ''"
               f" as $$ begin insert into public.{table} values (new.id, new.raw_user_meta_data->>'name');"
               f" return new; end $$")
    db.execute(f"create trigger {trg} after insert on auth.users for each row execute function public.{fn}()")
    try:
        c = client(stack)
        res = c.sign_up({"email": new_email(), "password": "secret-pass-1",
                         "options": {"data": {"name": "Ada"}}})
        assert res.user is not None
        assert db.execute(f"select name from public.{table} where id = %s", (res.user.id,)).fetchone() == ("Ada",)
        row = db.execute("select aud, role, encrypted_password like '$2%%' from auth.users where id = %s",
                         (res.user.id,)).fetchone()
        assert row == ("authenticated", "authenticated", True)
        assert db.execute("select count(*) from auth.sessions where user_id = %s", (res.user.id,)).fetchone() == (1,)
        assert db.execute("select count(*) from auth.refresh_tokens where user_id = %s",
                          (res.user.id,)).fetchone() == (1,)
        assert db.execute("select provider from auth.identities where user_id = %s",
                          (res.user.id,)).fetchone() == ("email",)
    finally:
        db.execute(f"drop trigger if exists {trg} on auth.users")
        db.execute(f"drop function if exists public.{fn}()")
        db.execute(f"drop table if exists public.{table}")


def test_duplicate_signup_is_user_already_exists(stack) -> None:  # type: ignore[no-untyped-def]
    _, _, email = signed_up(stack)
    with pytest.raises(AuthApiError) as err:
        client(stack).sign_up({"email": email.upper(), "password": "secret-pass-1"})
    assert (err.value.status, err.value.code) == (422, "user_already_exists")


def test_weak_password_is_rejected_with_reasons(stack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthWeakPasswordError) as err:
        client(stack).sign_up({"email": new_email(), "password": "abc"})
    assert err.value.status == 422
    assert err.value.code == "weak_password"
    assert "length" in err.value.reasons


def test_sign_in_with_password_and_get_user(stack) -> None:  # type: ignore[no-untyped-def]
    _, first, email = signed_up(stack)
    c = client(stack)
    res = c.sign_in_with_password({"email": email, "password": "secret-pass-1"})
    assert res.session is not None and res.user is not None
    assert res.user.last_sign_in_at is not None
    assert claims_of(res.session.access_token)["session_id"] != claims_of(first.session.access_token)["session_id"]
    me = c.get_user()
    assert me is not None and me.user.id == res.user.id and me.user.email == email


def test_wrong_password_and_unknown_user_answer_alike(stack) -> None:  # type: ignore[no-untyped-def]
    _, _, email = signed_up(stack)
    body_wrong = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=password", headers={"apikey": stack.anon_key},
                            json={"email": email, "password": "not-the-password"})
    body_unknown = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=password",
                              headers={"apikey": stack.anon_key},
                              json={"email": new_email(), "password": "not-the-password"})
    assert body_wrong.status_code == body_unknown.status_code == 400
    assert body_wrong.json() == body_unknown.json() == {
        "code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}
    with pytest.raises(AuthApiError) as err:
        client(stack).sign_in_with_password({"email": email, "password": "nope-nope"})
    assert (err.value.status, err.value.code, err.value.message) == (400, "invalid_credentials",
                                                                     "Invalid login credentials")


def test_anonymous_sign_in_then_link_email(stack) -> None:  # type: ignore[no-untyped-def]
    c = client(stack)
    res = c.sign_in_anonymously({"options": {"data": {"theme": "dark"}}})
    assert res.user is not None and res.session is not None
    assert res.user.is_anonymous
    claims = claims_of(res.session.access_token)
    assert claims["is_anonymous"] is True and claims["amr"][0]["method"] == "anonymous"
    email = new_email()
    upd = c.update_user({"email": email})
    assert upd.user.email == email and not upd.user.is_anonymous
    upd = c.update_user({"password": "secret-pass-1"})
    res2 = client(stack).sign_in_with_password({"email": email, "password": "secret-pass-1"})
    assert res2.user is not None and res2.user.id == res.user.id


def test_phone_signup_is_disabled_by_default_config(stack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthApiError) as err:
        client(stack).sign_up({"phone": "+1" + new_phone()[1:], "password": "secret-pass-1"})
    assert (err.value.status, err.value.code) == (422, "phone_provider_disabled")


# -- refresh tokens -------------------------------------------------------------------------------
def test_refresh_rotates_and_reuse_within_interval_returns_active_token(stack) -> None:  # type: ignore[no-untyped-def]
    c, res, _ = signed_up(stack)
    r0 = res.session.refresh_token
    s1 = c.refresh_session(r0).session
    assert s1 is not None and s1.refresh_token != r0
    assert claims_of(s1.access_token)["session_id"] == claims_of(res.session.access_token)["session_id"]
    # r0 is revoked but reused within refresh_token_reuse_interval (10 s): the active token comes back
    again = client(stack).refresh_session(r0).session
    assert again is not None and again.refresh_token == s1.refresh_token


def test_refresh_reuse_after_interval_revokes_the_family(stack, db) -> None:  # type: ignore[no-untyped-def]
    c, res, _ = signed_up(stack)
    r0 = res.session.refresh_token
    s1 = c.refresh_session(r0).session
    assert s1 is not None
    db.execute("update auth.refresh_tokens set updated_at = now() - interval '1 minute' where token = %s", (r0,))
    with pytest.raises(AuthApiError) as err:
        client(stack).refresh_session(r0)
    assert (err.value.status, err.value.code) == (400, "refresh_token_already_used")
    # the whole family is revoked: the previously active token no longer works either
    with pytest.raises(AuthApiError) as err2:
        client(stack).refresh_session(s1.refresh_token)
    assert err2.value.code == "refresh_token_already_used"


def test_unknown_refresh_token(stack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthApiError) as err:
        client(stack).refresh_session("definitely-not-a-token")
    assert (err.value.status, err.value.code) == (400, "refresh_token_not_found")


# -- logout --------------------------------------------------------------------------------------
def _three_sessions(stack):  # type: ignore[no-untyped-def]
    _, _, email = signed_up(stack)
    clients = [client(stack) for _ in range(3)]
    sessions = [c.sign_in_with_password({"email": email, "password": "secret-pass-1"}).session for c in clients]
    return clients, sessions


def _alive(stack, refresh_token: str) -> bool:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=refresh_token", headers={"apikey": stack.anon_key},
                   json={"refresh_token": refresh_token})
    return r.status_code == 200


def test_logout_local_others_global(stack) -> None:  # type: ignore[no-untyped-def]
    clients, sessions = _three_sessions(stack)
    clients[0].sign_out({"scope": "local"})
    assert not _alive(stack, sessions[0].refresh_token)
    assert _alive(stack, sessions[1].refresh_token)
    # after the local sign out, the access token's session is gone: /user answers 403 session_not_found
    r = httpx.get(f"{stack.api_url}/auth/v1/user", headers={"apikey": stack.anon_key,
                                                          "Authorization": f"Bearer {sessions[0].access_token}"})
    assert r.status_code == 403 and r.json()["error_code"] == "session_not_found"

    clients, sessions = _three_sessions(stack)
    clients[0].sign_out({"scope": "others"})
    assert _alive(stack, sessions[0].refresh_token)
    assert not _alive(stack, sessions[1].refresh_token) and not _alive(stack, sessions[2].refresh_token)

    clients, sessions = _three_sessions(stack)
    clients[1].sign_out()
    assert not any(_alive(stack, s.refresh_token) for s in sessions)
    assert clients[1].get_session() is None


# -- update user -------------------------------------------------------------------------------
def test_update_user_metadata_password_and_email(stack) -> None:  # type: ignore[no-untyped-def]
    c, res, email = signed_up(stack, data={"a": 1, "b": 2})
    upd = c.update_user({"data": {"b": None, "c": 3}})
    assert upd.user.user_metadata["a"] == 1 and "b" not in upd.user.user_metadata
    assert upd.user.user_metadata["c"] == 3
    with pytest.raises(AuthApiError) as err:
        c.update_user({"password": "secret-pass-1"})
    assert (err.value.status, err.value.code) == (422, "same_password")
    c.update_user({"password": "another-pass-2"})
    assert client(stack).sign_in_with_password({"email": email, "password": "another-pass-2"}).session
    new = new_email()
    upd = c.update_user({"email": new})  # confirmations are off in the test stack: applied at once
    assert upd.user.email == new
    taken = signed_up(stack)[2]
    with pytest.raises(AuthApiError) as err:
        c.update_user({"email": taken})
    assert (err.value.status, err.value.code) == (422, "email_exists")


# -- OTP, magic links, recovery, reauthentication ------------------------------------------------
def test_magic_link_otp_code_signs_in(stack) -> None:  # type: ignore[no-untyped-def]
    _, res, email = signed_up(stack)
    c = client(stack)
    out = c.sign_in_with_otp({"email": email})
    assert out.user is None and out.session is None
    msg = last_message(stack, email, "magiclink")
    assert msg["channel"] == "email" and len(msg["otp"]) == 6 and msg["link"].startswith(stack.api_url)
    session = c.verify_otp({"email": email, "token": msg["otp"], "type": "email"})
    assert session.user is not None and session.user.id == res.user.id
    assert claims_of(session.session.access_token)["amr"][0]["method"] == "otp"
    with pytest.raises(AuthApiError) as err:  # single use
        client(stack).verify_otp({"email": email, "token": msg["otp"], "type": "email"})
    assert (err.value.status, err.value.code) == (403, "otp_expired")


def test_otp_creates_user_and_link_redirects_with_tokens(stack) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    client(stack).sign_in_with_otp({"email": email, "options": {"data": {"src": "otp"}}})
    msg = last_message(stack, email, "signup")
    r = httpx.get(msg["link"], follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("http://127.0.0.1:3000")
    fragment = parse_qs(urlsplit(location).fragment)
    assert fragment["token_type"] == ["bearer"] and fragment["type"] == ["signup"]
    claims = claims_of(fragment["access_token"][0])
    assert claims["email"] == email and claims["user_metadata"]["src"] == "otp"
    # the link is single use: a second click redirects with the error
    r2 = httpx.get(msg["link"], follow_redirects=False)
    assert parse_qs(urlsplit(r2.headers["location"]).fragment)["error_code"] == ["otp_expired"]


def test_otp_without_create_user_for_unknown_email(stack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthApiError) as err:
        client(stack).sign_in_with_otp({"email": new_email(), "options": {"should_create_user": False}})
    assert (err.value.status, err.value.code) == (422, "otp_disabled")


def test_verify_with_token_hash(stack) -> None:  # type: ignore[no-untyped-def]
    _, res, email = signed_up(stack)
    client(stack).sign_in_with_otp({"email": email})
    msg = last_message(stack, email, "magiclink")
    out = client(stack).verify_otp({"token_hash": msg["token_hash"], "type": "magiclink"})
    assert out.user is not None and out.user.id == res.user.id


def test_password_recovery_flow(stack) -> None:  # type: ignore[no-untyped-def]
    _, res, email = signed_up(stack)
    c = client(stack)
    c.reset_password_for_email(email, {"redirect_to": "http://127.0.0.1:3000/reset"})
    msg = last_message(stack, email, "recovery")
    assert "redirect_to=http%3A%2F%2F127.0.0.1%3A3000%2Freset" in msg["link"]
    out = c.verify_otp({"email": email, "token": msg["otp"], "type": "recovery"})
    assert out.session is not None
    assert claims_of(out.session.access_token)["amr"][0]["method"] == "recovery"
    c.update_user({"password": "recovered-pass-3"})
    assert client(stack).sign_in_with_password({"email": email, "password": "recovered-pass-3"}).session
    # unknown addresses answer the same (no enumeration) and send nothing
    unknown = new_email()
    client(stack).reset_password_for_email(unknown)
    local_only(stack)
    assert not list_messages(stack.db_url, unknown)


def test_reauthenticate_nonce_updates_password(stack) -> None:  # type: ignore[no-untyped-def]
    c, _, email = signed_up(stack)
    c.reauthenticate()
    msg = last_message(stack, email, "reauthentication")
    wrong = "000000" if msg["otp"] != "000000" else "111111"
    with pytest.raises(AuthApiError) as err:
        c.update_user({"password": "nonce-pass-4", "nonce": wrong})
    assert err.value.code == "otp_expired"
    c.update_user({"password": "nonce-pass-4", "nonce": msg["otp"]})
    assert client(stack).sign_in_with_password({"email": email, "password": "nonce-pass-4"}).session
    with pytest.raises(AuthApiError):  # the nonce is single use
        c.update_user({"password": "nonce-pass-5", "nonce": msg["otp"]})


def test_pkce_magic_link_exchange(stack) -> None:  # type: ignore[no-untyped-def]
    _, res, email = signed_up(stack)
    c = client(stack, flow_type="pkce")
    c.sign_in_with_otp({"email": email, "options": {"email_redirect_to": "http://127.0.0.1:3000/cb"}})
    msg = last_message(stack, email, "magiclink")
    assert "token=pkce_" in msg["link"]
    r = httpx.get(msg["link"], follow_redirects=False)
    location = r.headers["location"]
    assert location.startswith("http://127.0.0.1:3000/cb?code=")
    code = parse_qs(urlsplit(location).query)["code"][0]
    with pytest.raises(AuthApiError) as err:
        client(stack).exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 50})
    assert (err.value.status, err.value.code) == (403, "bad_code_verifier")
    # the failed attempt wrote nothing: the client's stored verifier still redeems the code, once
    out = c.exchange_code_for_session({"auth_code": code})
    assert out.session is not None and out.user is not None and out.user.id == res.user.id
    with pytest.raises(AuthApiError) as err:
        client(stack).exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 50})
    assert (err.value.status, err.value.code) == (404, "flow_state_not_found")


def test_redirect_to_outside_allow_list_falls_back_to_site_url(stack) -> None:  # type: ignore[no-untyped-def]
    _, _, email = signed_up(stack)
    client(stack).reset_password_for_email(email, {"redirect_to": "https://evil.example.net/steal"})
    msg = last_message(stack, email, "recovery")
    assert "evil" not in msg["link"] and msg["redirect_to"] == "http://127.0.0.1:3000"


# -- MFA --------------------------------------------------------------------------------------------
def test_totp_enroll_challenge_verify_unenroll(stack) -> None:  # type: ignore[no-untyped-def]
    c, res, email = signed_up(stack)
    enrolled = c.mfa.enroll({"factor_type": "totp", "friendly_name": "phone app", "issuer": "appkit"})
    assert enrolled.type == "totp" and enrolled.totp is not None
    assert enrolled.totp.uri.startswith("otpauth://totp/appkit:") and "<svg" in enrolled.totp.qr_code
    with pytest.raises(AuthApiError) as err:
        c.mfa.enroll({"factor_type": "totp", "friendly_name": "phone app"})
    assert err.value.code == "mfa_factor_name_conflict"
    challenge = c.mfa.challenge({"factor_id": enrolled.id})
    assert challenge.expires_at > time.time()
    with pytest.raises(AuthApiError) as err:
        c.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id,
                      "code": str((int(totp.code_at(enrolled.totp.secret)) + 1) % 1000000).zfill(6)})
    assert (err.value.status, err.value.code) == (422, "mfa_verification_failed")
    verified = c.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id,
                             "code": totp.code_at(enrolled.totp.secret)})
    claims = claims_of(verified.access_token)
    assert claims["aal"] == "aal2" and {a["method"] for a in claims["amr"]} == {"password", "totp"}
    level = c.mfa.get_authenticator_assurance_level()
    assert level.current_level == "aal2" and level.next_level == "aal2"
    # a new password sign-in starts at aal1 and must step up
    c2 = client(stack)
    c2.sign_in_with_password({"email": email, "password": "secret-pass-1"})
    lv = c2.mfa.get_authenticator_assurance_level()
    assert lv.current_level == "aal1" and lv.next_level == "aal2"
    with pytest.raises(AuthApiError) as err:
        c2.mfa.unenroll({"factor_id": enrolled.id})
    assert (err.value.status, err.value.code) == (422, "insufficient_aal")
    c2.mfa.challenge_and_verify({"factor_id": enrolled.id, "code": totp.code_at(enrolled.totp.secret)})
    assert c2.mfa.unenroll({"factor_id": enrolled.id}).id == enrolled.id
    me = c2.get_user()
    assert me is not None and not me.user.factors


def test_admin_lists_and_deletes_factors(stack) -> None:  # type: ignore[no-untyped-def]
    c, res, _ = signed_up(stack)
    enrolled = c.mfa.enroll({"factor_type": "totp"})
    admin = admin_client(stack)
    factors = admin.mfa.list_factors({"user_id": res.user.id})
    assert [f.id for f in factors] == [enrolled.id] and factors[0].status == "unverified"
    assert admin.mfa.delete_factor({"user_id": res.user.id, "id": enrolled.id}).id == enrolled.id
    assert admin.mfa.list_factors({"user_id": res.user.id}) == []


# -- admin ----------------------------------------------------------------------------------------
def test_admin_user_crud_pagination_ban_and_delete(stack, db) -> None:  # type: ignore[no-untyped-def]
    admin = admin_client(stack)
    email = new_email("admin")
    created = admin.create_user({"email": email, "password": "secret-pass-1", "email_confirm": True,
                                 "user_metadata": {"name": "Grace"}, "app_metadata": {"plan": "pro"}}).user
    assert created.email_confirmed_at is not None and created.user_metadata["name"] == "Grace"
    assert created.app_metadata["plan"] == "pro" and created.app_metadata["providers"] == ["email"]
    assert admin.get_user_by_id(created.id).user.email == email
    with pytest.raises(AuthApiError) as err:
        admin.create_user({"email": email, "password": "secret-pass-1"})
    assert (err.value.status, err.value.code) == (422, "email_exists")

    for _ in range(2):
        admin.create_user({"email": new_email("page"), "email_confirm": True})
    page1 = admin.list_users(page=1, per_page=2)
    page2 = admin.list_users(page=2, per_page=2)
    assert len(page1) == 2 and len(page2) >= 1 and not {u.id for u in page1} & {u.id for u in page2}
    r = httpx.get(f"{stack.api_url}/auth/v1/admin/users?page=1&per_page=2",
                  headers={"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"})
    assert int(r.headers["x-total-count"]) >= 3 and 'rel="next"' in r.headers["link"]

    upd = admin.update_user_by_id(created.id, {"app_metadata": {"plan": "free", "org": 7},
                                               "user_metadata": {"age": 36}})
    assert upd.user.app_metadata["plan"] == "free" and upd.user.app_metadata["org"] == 7
    assert upd.user.user_metadata == {**created.user_metadata, "age": 36}
    c = client(stack)
    s = c.sign_in_with_password({"email": email, "password": "secret-pass-1"}).session
    claims = claims_of(s.access_token)
    assert claims["app_metadata"]["plan"] == "free"

    banned = admin.update_user_by_id(created.id, {"ban_duration": "24h"})
    assert banned.user.banned_until is not None
    with pytest.raises(AuthApiError) as err:
        client(stack).sign_in_with_password({"email": email, "password": "secret-pass-1"})
    assert (err.value.status, err.value.code) == (400, "user_banned")
    with pytest.raises(AuthApiError) as err:
        client(stack).refresh_session(s.refresh_token)
    assert err.value.status == 400
    admin.update_user_by_id(created.id, {"ban_duration": "none"})
    assert client(stack).sign_in_with_password({"email": email, "password": "secret-pass-1"}).session

    admin.delete_user(created.id, should_soft_delete=True)
    row = db.execute("select deleted_at is not null, email <> %s from auth.users where id = %s",
                     (email, created.id)).fetchone()
    assert row == (True, True)
    with pytest.raises(AuthApiError) as err:
        admin.get_user_by_id(created.id)
    assert (err.value.status, err.value.code) == (404, "user_not_found")
    with pytest.raises(AuthApiError):
        client(stack).sign_in_with_password({"email": email, "password": "secret-pass-1"})

    hard = admin.create_user({"email": new_email("hard"), "password": "secret-pass-1"}).user
    admin.delete_user(hard.id)
    assert db.execute("select count(*) from auth.users where id = %s", (hard.id,)).fetchone() == (0,)


def test_admin_rejects_non_admin_tokens(stack) -> None:  # type: ignore[no-untyped-def]
    _, res, _ = signed_up(stack)
    for token in (stack.anon_key, res.session.access_token):
        r = httpx.get(f"{stack.api_url}/auth/v1/admin/users",
                      headers={"apikey": stack.anon_key, "Authorization": f"Bearer {token}"})
        assert r.status_code == 403 and r.json()["error_code"] == "not_admin"


def test_generate_link_and_invite(stack) -> None:  # type: ignore[no-untyped-def]
    admin = admin_client(stack)
    email = new_email("link")
    link = admin.generate_link({"type": "signup", "email": email, "password": "secret-pass-1"})
    assert link.properties.verification_type == "signup" and len(link.properties.email_otp) == 6
    assert link.user.email == email and link.user.email_confirmed_at is None
    out = client(stack).verify_otp({"token_hash": link.properties.hashed_token, "type": "signup"})
    assert out.session is not None and out.user is not None and out.user.email_confirmed_at is not None
    ml = admin.generate_link({"type": "magiclink", "email": email})
    r = httpx.get(ml.properties.action_link, follow_redirects=False)
    assert "access_token=" in r.headers["location"]
    with pytest.raises(AuthApiError) as err:
        admin.generate_link({"type": "recovery", "email": new_email()})
    assert (err.value.status, err.value.code) == (404, "user_not_found")

    invited = new_email("invite")
    user = admin.invite_user_by_email(invited, {"data": {"team": "blue"}}).user
    assert user.invited_at is not None and user.user_metadata["team"] == "blue"
    msg = last_message(stack, invited, "invite")
    session = client(stack).verify_otp({"email": invited, "token": msg["otp"], "type": "invite"})
    assert session.session is not None
    assert claims_of(session.session.access_token)["amr"][0]["method"] == "invite"


# -- info endpoints and the message catcher ---------------------------------------------------------------
def test_settings_health_jwks(stack) -> None:  # type: ignore[no-untyped-def]
    h = {"apikey": stack.anon_key}
    s = httpx.get(f"{stack.api_url}/auth/v1/settings", headers=h).json()
    assert s["external"]["email"] is True and s["external"]["anonymous_users"] is True
    assert s["mailer_autoconfirm"] is True and s["disable_signup"] is False
    health = httpx.get(f"{stack.api_url}/auth/v1/health").json()
    assert health["name"] == "GoTrue"
    assert httpx.get(f"{stack.api_url}/auth/v1/.well-known/jwks.json").json() == {"keys": []}


def test_messages_endpoint_needs_service_role(stack) -> None:  # type: ignore[no-untyped-def]
    local_only(stack)
    _, _, email = signed_up(stack)
    client(stack).reset_password_for_email(email)
    url = f"{stack.api_url}/auth/v1/_appkit/messages?email={email}"
    r = httpx.get(url, headers={"apikey": stack.service_role_key,
                                "Authorization": f"Bearer {stack.service_role_key}"})
    assert r.status_code == 200
    msgs = r.json()["messages"]
    assert msgs[0]["recipient"] == email and msgs[0]["type"] == "recovery" and msgs[0]["otp"]
    denied = httpx.get(url, headers={"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"})
    assert denied.status_code == 403


# -- async client ----------------------------------------------------------------------------------
async def test_async_client_core_flows(stack) -> None:  # type: ignore[no-untyped-def]
    c = async_client(stack)
    email = new_email("async")
    res = await c.sign_up({"email": email, "password": "secret-pass-1"})
    assert res.session is not None
    signed = await c.sign_in_with_password({"email": email, "password": "secret-pass-1"})
    assert signed.session is not None
    me = await c.get_user()
    assert me is not None and me.user.email == email
    refreshed = await c.refresh_session()
    assert refreshed.session is not None and refreshed.session.refresh_token != signed.session.refresh_token
    upd = await c.update_user({"data": {"k": "v"}})
    assert upd.user.user_metadata["k"] == "v"
    enrolled = await c.mfa.enroll({"factor_type": "totp"})
    assert enrolled.totp is not None
    await c.mfa.challenge_and_verify({"factor_id": enrolled.id, "code": totp.code_at(enrolled.totp.secret)})
    level = await c.mfa.get_authenticator_assurance_level()
    assert level.current_level == "aal2"
    await c.sign_out()
    assert await c.get_session() is None
    with pytest.raises(AuthApiError):
        await c.sign_in_with_password({"email": email, "password": "wrong-pass-1"})
    admin = c.admin
    admin._headers["Authorization"] = f"Bearer {stack.service_role_key}"
    admin._headers["apikey"] = stack.service_role_key
    user = (await admin.get_user_by_id(res.user.id)).user
    assert user.email == email
    await admin.delete_user(res.user.id)
    with pytest.raises(AuthApiError):
        await admin.get_user_by_id(res.user.id)


def test_phone_numbers_normalised_in_admin(stack) -> None:  # type: ignore[no-untyped-def]
    admin = admin_client(stack)
    phone = new_phone()
    user = admin.create_user({"phone": "+" + phone, "password": "secret-pass-1", "phone_confirm": True}).user
    assert user.phone == phone and user.phone_confirmed_at is not None
    res = client(stack).sign_in_with_password({"phone": "+" + phone, "password": "secret-pass-1"})
    assert res.user is not None and res.user.id == user.id
    assert json.loads(json.dumps(claims_of(res.session.access_token)))["phone"] == phone
    both = admin.create_user({"email": new_email(), "phone": new_phone(), "email_confirm": True,
                              "phone_confirm": True}).user
    assert sorted((i.provider, i.id) for i in both.identities or []) == [("email", both.id), ("phone", both.id)]
    assert both.app_metadata["providers"] == ["email", "phone"]


def test_db_role_is_supabase_auth_admin(stack) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        rows = conn.execute("select distinct usename from pg_stat_activity where application_name like '%%'"
                            " and usename = 'supabase_auth_admin'").fetchall()
    assert rows == [("supabase_auth_admin",)]


def test_get_user_json_matches_other_endpoints(stack) -> None:  # type: ignore[no-untyped-def]
    """GET /user is rendered by Postgres; every other endpoint renders users in Python."""
    c, res, _ = signed_up(stack, data={"nested": {"k": None, "v": [1, "x"]}})
    c.mfa.enroll({"factor_type": "totp", "friendly_name": "app"})
    c.mfa.enroll({"factor_type": "totp"})
    updated = c.update_user({"data": {"extra": True}}).user
    fetched = c.get_user()
    assert fetched is not None
    assert fetched.user == updated
    assert fetched.user.user_metadata["nested"] == {"k": None, "v": [1, "x"]}
    assert [f.friendly_name for f in fetched.user.factors or []] == ["app", None]
    admin_view = admin_client(stack).get_user_by_id(res.user.id).user
    assert admin_view == fetched.user
    refreshed = c.refresh_session().session  # the refresh fast path renders the user in SQL too
    assert refreshed is not None and refreshed.user == fetched.user
    before = claims_of(c.get_session().access_token)  # type: ignore[union-attr]
    signed_in = claims_of(client(stack).sign_in_with_password(
        {"email": fetched.user.email, "password": "secret-pass-1"}).session.access_token)  # type: ignore[union-attr]
    for key in ("aud", "sub", "email", "phone", "app_metadata", "user_metadata", "role", "aal", "is_anonymous",
                "iss"):
        assert before[key] == signed_in[key], key


def test_concurrent_refreshes_of_one_token_agree(stack) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    _, res, _ = signed_up(stack)
    token = res.session.refresh_token

    def refresh(_: int) -> httpx.Response:
        return httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=refresh_token",
                          headers={"apikey": stack.anon_key}, json={"refresh_token": token})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(refresh, range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.json()["refresh_token"] for a in answers}) == 1


async def test_async_client_otp_recovery_anonymous_and_admin_links(stack) -> None:  # type: ignore[no-untyped-def]
    c = async_client(stack)
    email = new_email("async-otp")
    await c.sign_in_with_otp({"email": email})
    msg = last_message(stack, email, "signup")
    res = await c.verify_otp({"email": email, "token": msg["otp"], "type": "email"})
    assert res.session is not None and res.user is not None and res.user.email == email
    anon = await async_client(stack).sign_in_anonymously()
    assert anon.user is not None and anon.user.is_anonymous
    admin = async_client(stack).admin
    admin._headers.update({"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"})
    other = new_email("async-rec")
    created = (await admin.create_user({"email": other, "password": "secret-pass-1", "email_confirm": True})).user
    await async_client(stack).reset_password_for_email(other)
    rec = last_message(stack, other, "recovery")
    out = await async_client(stack).verify_otp({"token_hash": rec["token_hash"], "type": "recovery"})
    assert out.user is not None and out.user.id == created.id
    link = await admin.generate_link({"type": "magiclink", "email": email})
    again = await async_client(stack).verify_otp({"email": email, "token": link.properties.email_otp,
                                                  "type": "magiclink"})
    assert again.user is not None and again.user.id == res.user.id
    users = await admin.list_users(page=1, per_page=1)
    assert len(users) == 1
    await c.sign_out({"scope": "others"})
    assert await c.get_session() is not None


def test_phone_mfa_factor_with_captured_sms(stack) -> None:  # type: ignore[no-untyped-def]
    c, _, _ = signed_up(stack)
    phone = new_phone()
    enrolled = c.mfa.enroll({"factor_type": "phone", "phone": "+" + phone, "friendly_name": "mobile"})
    assert enrolled.type == "phone" and enrolled.phone == phone
    challenge = c.mfa.challenge({"factor_id": enrolled.id})
    sms = last_message(stack, phone, "mfa_challenge")
    assert sms["channel"] == "sms" and sms["otp"] in sms["body"]
    with pytest.raises(AuthApiError) as err:
        c.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id,
                      "code": "000000" if sms["otp"] != "000000" else "111111"})
    assert err.value.code == "mfa_verification_failed"
    verified = c.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id, "code": sms["otp"]})
    assert claims_of(verified.access_token)["aal"] == "aal2"
    with pytest.raises(AuthApiError) as err:  # a challenge is single use
        c.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id, "code": sms["otp"]})
    assert (err.value.status, err.value.code) == (422, "mfa_challenge_expired")


def test_sign_in_reports_weak_password(stack) -> None:  # type: ignore[no-untyped-def]
    import bcrypt

    email = new_email("weak")
    hashed = bcrypt.hashpw(b"abc", bcrypt.gensalt(4)).decode()
    admin_client(stack).create_user({"email": email, "password_hash": hashed, "email_confirm": True})
    r = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=password", headers={"apikey": stack.anon_key},
                   json={"email": email, "password": "abc"})
    assert r.status_code == 200
    assert r.json()["weak_password"]["reasons"] == ["length"]
    strong = signed_up(stack)[2]
    r = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=password", headers={"apikey": stack.anon_key},
                   json={"email": strong, "password": "secret-pass-1"})
    assert "weak_password" not in r.json()


def test_routing_of_methods_and_heads(stack) -> None:  # type: ignore[no-untyped-def]
    """Exact paths are dispatched without the router; a wrong method is still 405, HEAD of a
    GET route still answers, and a path with parameters still routes."""
    headers = {"apikey": stack.anon_key}
    with httpx.Client(base_url=stack.api_url + "/auth/v1", headers=headers, timeout=30) as http:
        assert http.get("/token").status_code == 405
        assert http.post("/health").status_code == 405
        assert http.head("/health").status_code == 200
        assert http.get("/health").json()["name"] == "GoTrue"
        service = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
        missing = http.get(f"/admin/users/{uuid.uuid4()}", headers=service)
        assert missing.status_code == 404 and missing.json()["error_code"] == "user_not_found"
