"""The Users page: search, create, invite, ban/unban, reset password, claims, sign out, delete; a user's
sessions and organizations; CSRF refusal; 400/404 pages for bad parameters and ids."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from appkit import AppKit, errors
from appkit.local import list_messages
from tests.studio.conftest import post
from tests.support import StackHandle

pytestmark = pytest.mark.integration

PASSWORD = "first-pw-123"


@pytest.fixture(scope="module")
def app(stack: StackHandle) -> Iterator[AppKit]:
    with AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key,
                jwt_secret=stack.jwt_secret or None) as client:
        yield client


def _email(prefix: str = "u") -> str:
    return f"studio-{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def _create(studio: TestClient, email: str, password: str = PASSWORD) -> str:
    resp = post(studio, "/users/new", {"email": email, "password": password, "confirm": "1"})
    assert resp.status_code == 303, resp.text
    m = re.match(r"/users/([0-9a-f-]{36})", resp.headers["location"])
    assert m is not None
    return m.group(1)


def test_search_and_list(studio: TestClient) -> None:
    email = _email("search")
    uid = _create(studio, email)
    resp = studio.get("/users", params={"q": email.split("@")[0]})
    assert resp.status_code == 200 and email in resp.text and f"/users/{uid}" in resp.text
    assert 'id="no-users"' in studio.get("/users", params={"q": "no-such-" + uuid.uuid4().hex}).text
    assert studio.get("/users").status_code == 200


def test_create_shows_the_user_and_they_can_sign_in(studio: TestClient, app: AppKit) -> None:
    email = _email("create")
    uid = _create(studio, email)
    page = studio.get(f"/users/{uid}")
    assert page.status_code == 200 and email in page.text and ">active<" in page.text
    session = app.auth.sign_in(email=email, password=PASSWORD)
    page = studio.get(f"/users/{uid}")
    assert 'id="no-sessions"' not in page.text  # the sign-in's session is listed
    assert 'id="identities"' in page.text and ">email<" in page.text
    assert session.user.id == uid


def test_ban_blocks_sign_in_and_unban_restores_it(studio: TestClient, app: AppKit) -> None:
    email = _email("ban")
    uid = _create(studio, email)
    assert post(studio, f"/users/{uid}/ban", {"duration": "forever"}).status_code == 303
    assert ">banned<" in studio.get(f"/users/{uid}").text
    with pytest.raises(errors.AuthError):
        app.auth.sign_in(email=email, password=PASSWORD)
    assert post(studio, f"/users/{uid}/unban").status_code == 303
    assert app.auth.sign_in(email=email, password=PASSWORD).user.id == uid
    assert post(studio, f"/users/{uid}/ban", {"duration": "10y"}).status_code == 400


def test_password_claims_sign_out_delete(studio: TestClient, app: AppKit, stack: StackHandle) -> None:
    email = _email("pw")
    uid = _create(studio, email)
    session = app.auth.sign_in(email=email, password=PASSWORD)
    assert post(studio, f"/users/{uid}/password", {"password": "second-pw-456", "action": "set"}).status_code == 303
    with pytest.raises(errors.AuthError):
        app.auth.sign_in(email=email, password=PASSWORD)
    session = app.auth.sign_in(email=email, password="second-pw-456")
    resp = post(studio, f"/users/{uid}/claims", {"app_metadata": json.dumps({"plan": "pro"})})
    assert resp.status_code == 303
    assert app.admin.users.get(uid).app_metadata.get("plan") == "pro"
    assert post(studio, f"/users/{uid}/claims", {"app_metadata": "{not json"}).status_code == 400
    assert post(studio, f"/users/{uid}/claims", {"app_metadata": "[1]"}).status_code == 400
    assert post(studio, f"/users/{uid}/sign-out").status_code == 303
    with pytest.raises(errors.AuthError):
        app.auth.refresh(session)
    if stack.workdir is not None:
        assert post(studio, f"/users/{uid}/password", {"action": "email"}).status_code == 303
        assert list_messages(stack.db_url, email)[0]["type"] == "recovery"
    assert post(studio, f"/users/{uid}/delete").status_code == 303
    assert studio.get(f"/users/{uid}").status_code == 404


def test_invite_sends_mail(studio: TestClient, stack: StackHandle) -> None:
    email = _email("invite")
    resp = post(studio, "/users/invite", {"email": email})
    assert resp.status_code == 303
    uid = resp.headers["location"].split("/users/")[1].split("?")[0]
    assert ">invited<" in studio.get(f"/users/{uid}").text
    if stack.workdir is not None:
        assert list_messages(stack.db_url, email)[0]["type"] == "invite"


def test_memberships_are_listed(studio: TestClient, app: AppKit) -> None:
    email = _email("org")
    uid = _create(studio, email)
    me = app.as_user(app.auth.sign_in(email=email, password=PASSWORD))
    org = me.orgs.create("Studio Org", f"studio-{uuid.uuid4().hex[:10]}")
    page = studio.get(f"/users/{uid}").text
    assert f'href="/orgs/{org.id}"' in page and ">owner<" in page


def test_posts_need_the_csrf_token(studio: TestClient) -> None:
    uid = _create(studio, _email("csrf"))
    for path in ("/users/new", "/users/invite", f"/users/{uid}/ban", f"/users/{uid}/delete",
                 f"/users/{uid}/sign-out", f"/users/{uid}/claims", f"/users/{uid}/password"):
        assert studio.post(path, data={"email": _email(), "duration": "forever"}).status_code == 403, path
    assert studio.get(f"/users/{uid}").status_code == 200  # still there, not banned
    assert ">active<" in studio.get(f"/users/{uid}").text


@pytest.mark.parametrize(("query", "status"), [({"page": "0"}, 400), ({"page": "x"}, 400),
                                               ({"page": "99999999"}, 400), ({"q": "x" * 300}, 400),
                                               ({"q": "%' or 1=1 --"}, 200), ({"page": "9999"}, 200)])
def test_bad_list_parameters(studio: TestClient, query: dict[str, str], status: int) -> None:
    assert studio.get("/users", params=query).status_code == status


@pytest.mark.parametrize("path", ["/users/nope", f"/users/{uuid.uuid4()}", "/users/" + "1" * 36])
def test_unknown_users_are_404(studio: TestClient, path: str) -> None:
    assert studio.get(path).status_code == 404
    assert post(studio, path + "/ban", {"duration": "24h"}).status_code == 404


def test_bad_form_values_are_4xx(studio: TestClient) -> None:
    assert post(studio, "/users/new", {"email": ""}).status_code == 400
    assert post(studio, "/users/new", {"email": "not-an-email"}).status_code == 400
    email = _email("dup")
    _create(studio, email)
    assert post(studio, "/users/new", {"email": email, "password": PASSWORD}).status_code in (400, 409, 422)
