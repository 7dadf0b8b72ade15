"""``app.admin.users`` against the local stack: every method, typed results and typed errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import bcrypt
import psycopg
import pytest

from appkit import AppKit, errors
from appkit.users import GeneratedLink, User, UserPage
from tests.sdk_support import PASSWORD, make_app, make_async_app, new_email, require, totp
from tests.support import StackHandle


@pytest.fixture()
def app(stack: StackHandle) -> Iterator[AppKit]:
    require(stack, "auth")
    client = make_app(stack)
    yield client
    client.close()


def test_create_get_update_delete(app: AppKit) -> None:
    users = app.admin.users
    email = new_email()
    u = users.create(email=email, password=PASSWORD, email_confirm=True, user_metadata={"full_name": "Ada L"},
                     app_metadata={"plan": "pro"})
    assert isinstance(u, User) and u.email == email and u.email_confirmed_at is not None
    assert u.app_metadata["plan"] == "pro" and u.user_metadata["full_name"] == "Ada L"
    assert users.get(u.id).id == u.id
    changed = users.update(u.id, user_metadata={"city": "Paris"}, email_confirm=True)
    assert changed.user_metadata["city"] == "Paris" and changed.user_metadata["full_name"] == "Ada L"
    session = app.auth.sign_in(email=email, password=PASSWORD)
    assert session.user.id == u.id
    users.delete(u.id)
    with pytest.raises(errors.NotFound):
        users.get(u.id)


def test_list_pages_and_filter(app: AppKit) -> None:
    tag = uuid.uuid4().hex[:10]
    made = [app.admin.users.create(email=f"list-{tag}-{i}@example.com", email_confirm=True) for i in range(5)]
    page = app.admin.users.list(per_page=2, filter=tag)
    assert isinstance(page, UserPage) and page.total == 5 and len(page.users) == 2 and page.next_page == 2
    seen = {u.id for u in page.users}
    last = app.admin.users.list(page=3, per_page=2, filter=tag)
    assert len(last.users) == 1 and last.next_page is None
    seen |= {u.id for u in app.admin.users.list(page=2, per_page=2, filter=tag).users} | {last.users[0].id}
    assert seen == {u.id for u in made}
    assert app.admin.users.list(filter=f"nobody-{tag}").total == 0


def test_create_with_bcrypt_hash_keeps_it(app: AppKit, stack: StackHandle) -> None:
    email = new_email()
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    u = app.admin.users.create(email=email, password_hash=hashed, email_confirm=True)
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("select encrypted_password from auth.users where id = %s", (u.id,)).fetchone()
    assert row is not None and row[0] == hashed
    assert app.auth.sign_in(email=email, password=PASSWORD).user.id == u.id


def test_ban_unban_and_set_password(app: AppKit) -> None:
    email = new_email()
    u = app.admin.users.create(email=email, password=PASSWORD, email_confirm=True)
    session = app.auth.sign_in(email=email, password=PASSWORD)
    banned = app.admin.users.ban(u.id, timedelta(hours=2))
    assert banned.banned_until is not None
    with pytest.raises(errors.AppKitError):
        app.auth.sign_in(email=email, password=PASSWORD)
    with pytest.raises(errors.AppKitError):  # the ban ended the session
        app.auth.refresh(session)
    assert app.admin.users.unban(u.id).banned_until is None
    app.admin.users.set_password(u.id, "another-long-password-2")
    with pytest.raises(errors.AuthError):
        app.auth.sign_in(email=email, password=PASSWORD)
    assert app.auth.sign_in(email=email, password="another-long-password-2").user.id == u.id


def test_set_app_metadata_reaches_the_token(app: AppKit) -> None:
    email = new_email()
    u = app.admin.users.create(email=email, password=PASSWORD, email_confirm=True, app_metadata={"a": 1})
    user = app.admin.users.set_app_metadata(u.id, {"role_in_org": "owner", "a": None})
    assert user.app_metadata["role_in_org"] == "owner" and "a" not in user.app_metadata
    session = app.auth.sign_in(email=email, password=PASSWORD)
    principal = app.auth.verify(session.access_token)
    assert principal.claims["app_metadata"]["role_in_org"] == "owner"


def test_invite_and_generate_link(app: AppKit) -> None:
    email = new_email()
    invited = app.admin.users.invite(email, data={"team": "x"})
    assert invited.email == email and invited.invited_at is not None
    link = app.admin.users.generate_link("magiclink", email)
    assert isinstance(link, GeneratedLink) and link.user.id == invited.id and "token=" in link.action_link
    session = app.auth.verify_otp(token_hash=link.hashed_token, type="magiclink")
    assert session.user.id == invited.id
    signup = app.admin.users.generate_link("signup", new_email(), password=PASSWORD)
    assert signup.verification_type == "signup" and signup.email_otp


def test_sign_out_ends_every_session(app: AppKit) -> None:
    email = new_email()
    u = app.admin.users.create(email=email, password=PASSWORD, email_confirm=True)
    s1 = app.auth.sign_in(email=email, password=PASSWORD)
    s2 = app.auth.sign_in(email=email, password=PASSWORD)
    app.admin.users.sign_out(u.id)
    for s in (s1, s2):
        with pytest.raises(errors.AuthError):
            app.auth.refresh(s)
    s3 = app.auth.sign_in(email=email, password=PASSWORD)
    app.admin.users.sign_out(s3)  # by session too
    with pytest.raises(errors.AuthError):
        app.auth.refresh(s3)


def test_factors_and_delete_factor(app: AppKit) -> None:
    email = new_email()
    u = app.admin.users.create(email=email, password=PASSWORD, email_confirm=True)
    session = app.auth.sign_in(email=email, password=PASSWORD)
    enrolled = app.auth.mfa_enroll(session, friendly_name="phone app")
    assert enrolled.totp is not None
    app.auth.mfa_challenge_and_verify(enrolled.id, totp(enrolled.totp.secret), session)
    factors = app.admin.users.factors(u.id)
    assert [f.id for f in factors] == [enrolled.id] and factors[0].status == "verified"
    app.admin.users.delete_factor(u.id, enrolled.id)
    assert app.admin.users.factors(u.id) == []
    with pytest.raises(errors.NotFound):
        app.admin.users.delete_factor(u.id, enrolled.id)


def test_soft_delete_keeps_an_anonymised_row(app: AppKit, stack: StackHandle) -> None:
    email = new_email()
    u = app.admin.users.create(email=email, password=PASSWORD, email_confirm=True)
    app.admin.users.delete(u.id, soft=True)
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("select email, deleted_at from auth.users where id = %s", (u.id,)).fetchone()
    assert row is not None and row[1] is not None and row[0] != email
    with pytest.raises(errors.NotFound):
        app.admin.users.get(u.id)
    # the address is free again
    assert app.admin.users.create(email=email, email_confirm=True).email == email


@pytest.mark.parametrize("call", [
    lambda u: u.get("not-a-uuid"),
    lambda u: u.delete("12"),
    lambda u: u.ban(str(uuid.uuid4()), "forever"),
    lambda u: u.ban(str(uuid.uuid4()), "0h"),
    lambda u: u.ban(str(uuid.uuid4()), timedelta(0)),
    lambda u: u.list(page=0),
    lambda u: u.list(per_page=5000),
    lambda u: u.update(str(uuid.uuid4())),
    lambda u: u.create(),
    lambda u: u.create(email="a@example.com", password="x-long-password", password_hash="$2b$10$x"),
    lambda u: u.create(email=new_email(), password_hash="plaintext"),
    lambda u: u.create(email="not an email"),
    lambda u: u.set_app_metadata(str(uuid.uuid4()), ["not", "a", "mapping"]),
    lambda u: u.generate_link("bogus", "a@example.com"),
    lambda u: u.generate_link("signup", "a@example.com"),
    lambda u: u.delete_factor(str(uuid.uuid4()), "nope"),
    lambda u: u.set_password(str(uuid.uuid4()), ""),
])
def test_malformed_input_is_a_validation_error(app: AppKit, call: object) -> None:
    with pytest.raises(errors.ValidationError):
        call(app.admin.users)  # type: ignore[operator]


@pytest.mark.parametrize("call", [
    lambda u, x: u.get(x),
    lambda u, x: u.update(x, user_metadata={"a": 1}),
    lambda u, x: u.ban(x),
    lambda u, x: u.delete(x),
    lambda u, x: u.factors(x),
    lambda u, x: u.sign_out(x),
    lambda u, x: u.set_password(x, "a-long-password-3"),
])
def test_unknown_user_is_not_found(app: AppKit, call: object) -> None:
    with pytest.raises(errors.NotFound):
        call(app.admin.users, str(uuid.uuid4()))  # type: ignore[operator]


def test_duplicate_email_is_a_conflict(app: AppKit) -> None:
    email = new_email()
    app.admin.users.create(email=email)
    with pytest.raises(errors.Conflict):
        app.admin.users.create(email=email)


def test_only_the_service_role_manages_users(app: AppKit) -> None:
    with pytest.raises(errors.PermissionDenied):
        app.users  # noqa: B018
    session = app.auth.sign_up(email=new_email(), password=PASSWORD)
    with pytest.raises(errors.PermissionDenied):
        app.as_user(session).users  # noqa: B018


def test_sign_out_by_id_needs_the_jwt_secret(stack: StackHandle) -> None:
    app = AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key)
    with app, pytest.raises(errors.ConfigError):
        app.admin.users.sign_out(str(uuid.uuid4()))


def test_unreachable_server_is_service_unavailable() -> None:
    app = AppKit(url="http://127.0.0.1:9", anon_key="k", service_role_key="s", max_retries=0)
    with app, pytest.raises(errors.ServiceUnavailable):
        app.admin.users.list()


async def test_async_surface(stack: StackHandle) -> None:
    async with make_async_app(stack) as app:
        u = await app.admin.users.create(email=new_email(), email_confirm=True)
        assert (await app.admin.users.get(u.id)).id == u.id
        await app.admin.users.delete(u.id)
        with pytest.raises(errors.NotFound):
            await app.admin.users.get(u.id)
