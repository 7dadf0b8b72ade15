"""Auth through the SDK against the local stack: flows, sessions, refresh, MFA, verification."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest

from appkit import AppKit, col, errors
from tests.sdk_support import PASSWORD, Note, app, new_email, require, sdk_schema, signed_up, totp
from tests.support import StackHandle

__all__ = ["app", "sdk_schema"]
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _auth(stack: StackHandle) -> None:
    require(stack, "auth")


def last_message(db: psycopg.Connection[Any], recipient: str, kind: str | None = None) -> dict[str, Any]:
    """The newest captured e-mail of the local stack (skips against a real project)."""
    exists = db.execute("select to_regclass('_appkit.auth_messages') is not null").fetchone()
    if not exists or not exists[0]:
        pytest.skip("captured messages are a local-stack feature")
    row = db.execute(
        "select type, otp, token_hash, link from _appkit.auth_messages where lower(recipient) = lower(%s) "
        "and (%s::text is null or type = %s) order by id desc limit 1", (recipient, kind, kind),
    ).fetchone()
    assert row is not None, f"no message for {recipient}"
    return {"type": row[0], "otp": row[1], "token_hash": row[2], "link": row[3]}


def test_sign_up_sign_in_refresh_sign_out(app: AppKit) -> None:
    email = new_email()
    session = app.auth.sign_up(email=email, password=PASSWORD, data={"name": "Ada"})
    assert session.user.email == email
    assert session.user.user_metadata.get("name") == "Ada"
    again = app.auth.sign_in(email=email, password=PASSWORD)
    assert again.user.id == session.user.id
    refreshed = app.auth.refresh(again)
    assert refreshed.refresh_token != again.refresh_token
    assert app.auth.get_user(refreshed).id == session.user.id
    app.auth.sign_out(refreshed)
    with pytest.raises(errors.AuthError):
        app.auth.refresh(refreshed.refresh_token)


def test_bad_credentials_and_duplicates_are_typed(app: AppKit) -> None:
    email = new_email()
    app.auth.sign_up(email=email, password=PASSWORD)
    with pytest.raises(errors.AuthError) as bad:
        app.auth.sign_in(email=email, password="wrong-password")
    assert bad.value.code == "invalid_credentials"
    with pytest.raises((errors.Conflict, errors.AuthError)):
        app.auth.sign_up(email=email, password=PASSWORD)
    with pytest.raises(errors.ValidationError):
        app.auth.sign_in(password="x")
    with pytest.raises(errors.ValidationError):
        app.auth.sign_up(email=new_email(), password="1")  # weak password


def test_update_user_and_password_change(app: AppKit) -> None:
    email = new_email()
    session = app.auth.sign_up(email=email, password=PASSWORD)
    me = app.as_user(session)
    user = me.auth.update_user(data={"plan": "pro"})
    assert user.user_metadata["plan"] == "pro"
    app.auth.update_user(session, password=PASSWORD + "-new")
    assert app.auth.sign_in(email=email, password=PASSWORD + "-new").user.id == session.user.id
    with pytest.raises(errors.AuthError):
        app.auth.update_user(data={"x": 1})  # anon client: no session


def test_anonymous_sign_in(app: AppKit) -> None:
    session = app.auth.sign_in_anonymously()
    principal = app.auth.verify(session.access_token)
    assert principal.is_anonymous
    assert str(principal.user_id) == session.user.id


def test_otp_and_password_recovery(app: AppKit, db: psycopg.Connection[Any]) -> None:
    email = new_email()
    app.auth.sign_in_with_otp(email=email)
    msg = last_message(db, email)
    session = app.auth.verify_otp(email=email, token=msg["otp"], type="email")
    assert session.user.email == email
    with pytest.raises(errors.AuthError):
        app.auth.verify_otp(email=email, token="000000", type="email")
    third = new_email()
    app.auth.sign_in_with_otp(email=third)
    link = last_message(db, third)
    if link["token_hash"]:
        via_link = app.auth.verify_otp(token_hash=link["token_hash"], type="email")
        assert via_link.user.email == third
    other = new_email()  # a second address: the server limits how often one address gets mail
    user = app.auth.sign_up(email=other, password=PASSWORD).user
    app.auth.reset_password(other)
    recovery = last_message(db, other, "recovery")
    s2 = app.auth.verify_otp(email=other, token=recovery["otp"], type="recovery")
    assert s2.user.id == user.id


def test_oauth_url_uses_pkce(app: AppKit) -> None:
    start = app.auth.oauth_url("github", redirect_to="http://127.0.0.1:3000/cb")
    assert "/auth/v1/authorize?" in start.url
    assert "code_challenge=" in start.url and "provider=github" in start.url
    assert len(start.code_verifier) >= 43
    with pytest.raises(errors.AuthError):
        app.auth.exchange_code("not-a-real-code", start.code_verifier)


def test_mfa_totp_enroll_verify_unenroll(app: AppKit) -> None:
    session = signed_up(app)
    me = app.as_user(session)
    factor = me.auth.mfa_enroll(friendly_name=f"phone-{uuid.uuid4().hex[:4]}")
    assert factor.totp is not None
    upgraded = me.auth.mfa_challenge_and_verify(factor.id, totp(factor.totp.secret))
    assert app.auth.verify(upgraded.access_token).aal == "aal2"
    assert me.session is not None and me.session.access_token == upgraded.access_token
    assert [f.id for f in me.auth.mfa_list_factors() if f.status == "verified"] == [factor.id]
    level = me.auth.mfa_assurance_level()
    assert level.current_level == "aal2"
    with pytest.raises(errors.AuthError):
        me.auth.mfa_challenge_and_verify(factor.id, "000000")
    me.auth.mfa_unenroll(factor.id)
    assert me.auth.mfa_list_factors() == []


def test_as_user_refreshes_an_expiring_session(app: AppKit, stack: StackHandle, sdk_schema: None) -> None:
    require(stack, "rest")
    session = signed_up(app)
    stale = session.model_copy(update={"expires_at": int(time.time()) - 5})
    seen = []
    me = app.as_user(stale, on_refresh=seen.append)
    assert me.table(Note).list(col(Note.body).eq("nothing")) == []
    assert len(seen) == 1
    # the refresh token rotates; the access token may be byte-identical when the refresh
    # happens in the same second as the sign-in (same claims, same iat), as with Supabase
    assert me.session is not None and me.session.refresh_token == seen[0].refresh_token
    assert seen[0].refresh_token != session.refresh_token


def test_verify_real_tokens(app: AppKit, stack: StackHandle) -> None:
    session = signed_up(app)
    p = app.auth.verify(session.access_token)
    assert str(p.user_id) == session.user.id
    assert (p.role, p.email, p.aal) == ("authenticated", session.user.email, "aal1")
    assert p.is_authenticated
    with pytest.raises(errors.AuthError):
        app.auth.verify(stack.anon_key)  # no "authenticated" audience
    # no JWT secret configured: the auth server vouches for HS256 tokens
    without_secret = AppKit(url=stack.api_url, anon_key=stack.anon_key)
    assert str(without_secret.auth.verify(session.access_token).user_id) == session.user.id
    app.auth.sign_out(session)
    with pytest.raises(errors.AuthError):
        without_secret.auth.verify(session.access_token)  # the session is gone server-side
    without_secret.close()
    with pytest.raises(errors.AuthError):
        app.auth.verify(session.access_token[:-3] + ("AAA" if not session.access_token.endswith("AAA") else "BBB"))
