"""Server-side tests of the studio's Organizations page: list, create, members and roles, invitations,
transfer, delete; bad input is a 4xx page and every form needs the CSRF token."""

from __future__ import annotations

import re
import uuid

import pytest

from appkit import AppKit, errors
from tests.studio.pages_support import assert_no_5xx, csrf, flash, studio_client
from tests.support import StackHandle

pytestmark = pytest.mark.integration
PASSWORD = "studio-orgs-password-1"


@pytest.fixture(scope="module")
def app(stack: StackHandle) -> AppKit:
    return AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key)


def _user(app: AppKit) -> tuple[str, str]:
    email = f"orgs-{uuid.uuid4().hex[:10]}@example.com"
    user = app.admin.users.create(email=email, password=PASSWORD, email_confirm=True)
    return str(user.id), email


def _org_id(response_location: str) -> str:
    match = re.match(r"/orgs/([0-9a-f-]{36})", response_location)
    assert match, response_location
    return match.group(1)


def test_create_list_members_roles_transfer_delete(stack: StackHandle, app: AppKit) -> None:
    owner_id, owner = _user(app)
    other_id, other = _user(app)
    slug = f"acme-{uuid.uuid4().hex[:8]}"
    with studio_client(stack) as client:
        token = csrf(client, "/orgs")
        r = client.post("/orgs", data={"csrf_token": token, "name": "Acme Studio", "slug": slug, "owner": owner})
        assert "created" in flash(r)
        org_id = _org_id(r.headers["location"])
        listing = client.get(f"/orgs?q={slug}")
        assert listing.status_code == 200 and f"/orgs/{org_id}" in listing.text
        assert f"/orgs/{org_id}" not in client.get("/orgs?q=no-such-org-name").text
        page = client.get(f"/orgs/{org_id}")
        assert page.status_code == 200 and owner in page.text
        r = client.post(f"/orgs/{org_id}/members", data={"csrf_token": token, "user": other, "role": "viewer"})
        assert "added as viewer" in flash(r)
        r = client.post(f"/orgs/{org_id}/members/{other_id}/role", data={"csrf_token": token, "role": "admin"})
        assert "is now admin" in flash(r)
        roles = {str(m.user_id): m.role.value for m in app.admin.orgs.members(org_id)}
        assert roles == {owner_id: "owner", other_id: "admin"}
        r = client.post(f"/orgs/{org_id}/transfer", data={"csrf_token": token, "user": other_id})
        assert "transferred" in flash(r)
        roles = {str(m.user_id): m.role.value for m in app.admin.orgs.members(org_id)}
        assert roles[other_id] == "owner"
        r = client.post(f"/orgs/{org_id}/members/{owner_id}/remove", data={"csrf_token": token})
        assert "removed" in flash(r)
        assert [str(m.user_id) for m in app.admin.orgs.members(org_id)] == [other_id]
        # removing the last owner is refused by the database: a 4xx page, the member stays
        r = client.post(f"/orgs/{org_id}/members/{other_id}/remove", data={"csrf_token": token})
        assert 400 <= r.status_code < 500
        assert [str(m.user_id) for m in app.admin.orgs.members(org_id)] == [other_id]
        r = client.post(f"/orgs/{org_id}/delete", data={"csrf_token": token})
        assert "deleted" in flash(r)
        with pytest.raises(errors.NotFound):
            app.admin.orgs.get(org_id)
        assert client.get(f"/orgs/{org_id}").status_code == 404


def test_invitation_created_in_the_studio_is_accepted_through_the_sdk(stack: StackHandle, app: AppKit) -> None:
    _, owner = _user(app)
    guest_id, guest = _user(app)
    org = app.admin.orgs.create("Invite Co", f"inv-{uuid.uuid4().hex[:8]}", owner=owner)
    with studio_client(stack) as client:
        token = csrf(client, "/orgs")
        r = client.post(f"/orgs/{org.id}/invitations", data={"csrf_token": token, "email": guest, "role": "member",
                                                              "expires_days": "3"})
        assert r.status_code == 201
        invitation_token = re.search(r'id="invitation-token">([0-9a-f]{64})<', r.text)
        assert invitation_token, r.text[:2000]
        # the token is shown once: the invitation list does not repeat it
        assert invitation_token.group(1) not in client.get(f"/orgs/{org.id}").text
        me = app.as_user(app.auth.sign_in(email=guest, password=PASSWORD))
        membership = me.orgs.accept(invitation_token.group(1))
        assert str(membership.user_id) == guest_id and membership.role.value == "member"
        assert "accepted" in client.get(f"/orgs/{org.id}").text
        # a second invitation, revoked from the page, can no longer be accepted
        r = client.post(f"/orgs/{org.id}/invitations", data={"csrf_token": token, "role": "viewer"})
        second = re.search(r'id="invitation-token">([0-9a-f]{64})<', r.text)
        assert second
        pending = [i for i in app.admin.orgs.invitations(org.id) if i.status == "pending"]
        assert len(pending) == 1
        r = client.post(f"/orgs/{org.id}/invitations/{pending[0].id}/revoke", data={"csrf_token": token})
        assert "revoked" in flash(r)
        _, stranger = _user(app)
        with pytest.raises(errors.AppKitError):
            app.as_user(app.auth.sign_in(email=stranger, password=PASSWORD)).orgs.accept(second.group(1))


def test_bad_input_is_4xx(stack: StackHandle, app: AppKit) -> None:
    _, owner = _user(app)
    org = app.admin.orgs.create("Bad Input Co", f"bad-{uuid.uuid4().hex[:8]}", owner=owner)
    with studio_client(stack) as client:
        missing = f"/orgs/{uuid.uuid4()}"
        statuses = assert_no_5xx(client, ["/orgs/not-a-uuid", missing, "/orgs?q=%00", "/orgs?q=" + "x" * 300])
        assert statuses == {"/orgs/not-a-uuid": 404, missing: 404, "/orgs?q=%00": 400, "/orgs?q=" + "x" * 300: 400}
        token = csrf(client, "/orgs")
        cases = [
            ("/orgs", {"name": "", "slug": "x", "owner": owner}, 400),
            ("/orgs", {"name": "X", "slug": "Not A Slug", "owner": owner}, 400),
            ("/orgs", {"name": "X", "slug": f"s-{uuid.uuid4().hex[:6]}", "owner": "nobody@example.com"}, 404),
            ("/orgs", {"name": "X", "slug": org.slug, "owner": owner}, 409),
            (f"/orgs/{org.id}/members", {"user": "nobody@example.com"}, 404),
            (f"/orgs/{org.id}/members", {"user": owner, "role": "emperor"}, 400),
            (f"/orgs/{org.id}/members/not-a-uuid/role", {"role": "admin"}, 404),
            (f"/orgs/{org.id}/transfer", {"user": ""}, 400),
            (f"/orgs/{org.id}/transfer", {"user": "zzz"}, 400),
            (f"/orgs/{org.id}/invitations", {"email": "not an email"}, 400),
            (f"/orgs/{org.id}/invitations", {"expires_days": "0"}, 400),
            (f"/orgs/{org.id}/invitations/not-a-uuid/revoke", {}, 404),
            (f"/orgs/{uuid.uuid4()}/delete", {}, 404),
        ]
        got = {(path, tuple(sorted(data.items()))): client.post(path, data={"csrf_token": token, **data}).status_code
               for path, data, _ in cases}
        want = {(path, tuple(sorted(data.items()))): status for path, data, status in cases}
        assert got == want
        assert [o.slug for o in app.admin.orgs.list() if o.name == "X"] == []


def test_state_changes_need_the_csrf_token(stack: StackHandle, app: AppKit) -> None:
    _, owner = _user(app)
    org = app.admin.orgs.create("Csrf Co", f"csrf-{uuid.uuid4().hex[:8]}", owner=owner)
    with studio_client(stack) as client:
        csrf(client, "/orgs")
        for path, data in [("/orgs", {"name": "Y", "slug": f"y-{uuid.uuid4().hex[:6]}", "owner": owner}),
                           (f"/orgs/{org.id}/invitations", {"role": "member"}),
                           (f"/orgs/{org.id}/delete", {})]:
            assert client.post(path, data=data).status_code == 403, path
    assert app.admin.orgs.get(org.id).name == "Csrf Co"
    assert app.admin.orgs.invitations(org.id) == []
