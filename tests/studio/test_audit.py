"""Server-side tests of the studio's Audit log and Notifications pages: filters, keyset paging, sending to a
user and to an organization; bad input is a 4xx page and sending needs the CSRF token."""

from __future__ import annotations

import re
import uuid

import pytest

from appkit import AppKit
from tests.studio.pages_support import assert_no_5xx, csrf, flash, studio_client
from tests.support import StackHandle

pytestmark = pytest.mark.integration
PASSWORD = "studio-audit-password-1"


@pytest.fixture(scope="module")
def app(stack: StackHandle) -> AppKit:
    return AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key)


def _user(app: AppKit) -> tuple[str, str]:
    email = f"audit-{uuid.uuid4().hex[:10]}@example.com"
    return str(app.admin.users.create(email=email, password=PASSWORD, email_confirm=True).id), email


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr><td class="num">(\d+)</td>', html)]


def test_filters_and_keyset_paging(stack: StackHandle, app: AppKit) -> None:
    owner_id, owner = _user(app)
    member_id, member = _user(app)
    me = app.as_user(app.auth.sign_in(email=owner, password=PASSWORD))
    org = me.orgs.create("Audited Co", f"aud-{uuid.uuid4().hex[:8]}")
    for i in range(3):
        me.orgs.update(org.id, name=f"Audited Co {i}")
    app.admin.orgs.add(org.id, member_id, "member")
    with studio_client(stack) as client:
        page = client.get(f"/audit?org={org.id}")
        assert page.status_code == 200
        ids = _ids(page.text)
        assert len(ids) >= 5 and ids == sorted(ids, reverse=True)
        assert owner in page.text  # the actor's e-mail
        by_table = client.get(f"/audit?org={org.id}&table=appkit.memberships")
        assert "appkit.memberships" in by_table.text and "appkit.organizations</a>" not in by_table.text
        by_actor = _ids(client.get(f"/audit?org={org.id}&actor={owner_id}").text)
        assert by_actor and set(by_actor) < set(ids)  # the service role's insert is not the owner's
        assert _ids(client.get(f"/audit?org={org.id}&since=2999-01-01").text) == []
        assert _ids(client.get(f"/audit?org={org.id}&until=2000-01-01T00:00").text) == []
        newest = ids[0]
        assert _ids(client.get(f"/audit?org={org.id}&before={newest}").text) == ids[1:]
        assert 'id="older"' not in page.text  # one page only


def test_paging_walks_every_entry(stack: StackHandle, app: AppKit) -> None:
    _, owner = _user(app)
    me = app.as_user(app.auth.sign_in(email=owner, password=PASSWORD))
    org = me.orgs.create("Many Changes", f"many-{uuid.uuid4().hex[:8]}")
    for i in range(105):
        me.orgs.update(org.id, metadata={"i": i})
    with studio_client(stack) as client:
        seen: list[int] = []
        path = f"/audit?org={org.id}"
        while True:
            page = client.get(path)
            assert page.status_code == 200
            seen += _ids(page.text)
            nxt = re.search(r'id="older" href="([^"]+)"', page.text)
            if not nxt:
                break
            path = nxt.group(1).replace("&amp;", "&")
    assert len(seen) == len(set(seen)) >= 107 and seen == sorted(seen, reverse=True)


def test_audit_bad_query_parameters_are_400(stack: StackHandle) -> None:
    with studio_client(stack) as client:
        paths = ["/audit?org=nope", "/audit?actor=nope", "/audit?table=a.b.c", "/audit?since=yesterday",
                 "/audit?until=2026-13-45", "/audit?before=x", "/audit?before=0", "/audit?org=%00"]
        statuses = assert_no_5xx(client, paths)
        assert set(statuses.values()) == {400}, statuses


def test_send_to_a_user_and_to_an_org(stack: StackHandle, app: AppKit) -> None:
    owner_id, owner = _user(app)
    member_id, member = _user(app)
    org = app.admin.orgs.create("Notify Co", f"ntf-{uuid.uuid4().hex[:8]}", owner=owner)
    app.admin.orgs.add(org.id, member_id, "member")
    with studio_client(stack) as client:
        token = csrf(client, "/notifications")
        r = client.post("/notifications", data={"csrf_token": token, "to": "user", "user": member,
                                                 "title": "Hello member", "body": "one"})
        assert "sent to 1 user" in flash(r)
        r = client.post("/notifications", data={"csrf_token": token, "to": "org", "org": org.slug,
                                                 "title": "Hello org", "min_role": "viewer"})
        assert "sent to 2 member(s)" in flash(r)
        mine = app.as_user(app.auth.sign_in(email=member, password=PASSWORD)).notifications.list()
        assert sorted(n.title for n in mine) == ["Hello member", "Hello org"]
        owners = app.as_user(app.auth.sign_in(email=owner, password=PASSWORD)).notifications.list()
        assert [n.title for n in owners] == ["Hello org"]
        listing = client.get(f"/notifications?user={member}")
        assert listing.status_code == 200 and "Hello member" in listing.text
        assert "Hello member" not in client.get(f"/notifications?user={owner_id}").text


def test_notifications_bad_input(stack: StackHandle, app: AppKit) -> None:
    _, someone = _user(app)
    org = app.admin.orgs.create("Quiet Co", f"quiet-{uuid.uuid4().hex[:8]}", owner=someone)
    with studio_client(stack) as client:
        statuses = assert_no_5xx(client, ["/notifications?user=nobody", "/notifications?user=no@example.com"])
        assert statuses == {"/notifications?user=nobody": 400, "/notifications?user=no@example.com": 404}
        token = csrf(client, "/notifications")
        cases = [
            ({"to": "user", "user": someone, "title": ""}, 400),
            ({"to": "user", "user": someone, "title": "x" * 201}, 400),
            ({"to": "user", "user": someone, "title": "t", "kind": "Bad Kind!"}, 400),
            ({"to": "user", "user": "ghost@example.com", "title": "t"}, 404),
            ({"to": "org", "org": "no-such-org-slug", "title": "t"}, 404),
            ({"to": "org", "org": org.slug, "title": "t", "min_role": "emperor"}, 400),
            ({"to": "everyone", "title": "t"}, 400),
        ]
        got = [client.post("/notifications", data={"csrf_token": token, **d}).status_code for d, _ in cases]
        assert got == [s for _, s in cases]
        r = client.post("/notifications", data={"to": "user", "user": someone, "title": "forged"})
        assert r.status_code == 403
    assert app.as_user(app.auth.sign_in(email=someone, password=PASSWORD)).notifications.list() == []
