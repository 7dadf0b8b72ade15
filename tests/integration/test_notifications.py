"""Notifications: sql/0033_notifications.sql (RLS, realtime publication, RPCs) and app.notifications."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from appkit import AppKit, errors
from appkit.notifications import Notification
from tests.orgs_support import TestUser as OrgUser
from tests.orgs_support import build_org, make_user
from tests.sdk_support import make_app, make_async_app
from tests.support import REPO, StackHandle
from tests.svc_support import Caller, Probe, anon, assert_matrix, service, sql


@pytest.fixture()
def app(stack: StackHandle) -> Iterator[AppKit]:
    client = make_app(stack)
    yield client
    client.close()


def test_table_is_in_the_realtime_publication(stack: StackHandle) -> None:
    assert sql(stack, "select 1 from pg_publication_tables where pubname = 'supabase_realtime' "
                      "and schemaname = 'appkit' and tablename = 'notifications'") == [(1,)]


def test_send_list_count_mark_delete(stack: StackHandle, app: AppKit) -> None:
    u = make_user(stack)
    me = app.as_user(u.token).notifications
    first = app.admin.notifications.send(u.id, title="Welcome", body="Hello", data={"step": 1}, kind="welcome")
    assert (first.title, first.body, first.data, first.kind, first.read_at) == ("Welcome", "Hello", {"step": 1},
                                                                                 "welcome", None)
    assert first.sent_by is None and str(first.user_id) == u.id
    second = app.admin.notifications.send(u.id, title="Second")
    assert [n.id for n in me.list()] == [second.id, first.id]  # newest first
    assert me.unread_count() == 2
    assert [n.id for n in me.list(kind="welcome")] == [first.id]
    assert me.mark_read([first.id]) == 1
    assert me.mark_read([first.id]) == 0  # already read
    assert me.unread_count() == 1
    assert [n.id for n in me.list(unread_only=True)] == [second.id]
    assert me.mark_all_read() == 1 and me.unread_count() == 0
    assert me.list()[0].read_at is not None
    assert me.delete([first.id, uuid.uuid4()]) == 1
    assert [n.id for n in me.list()] == [second.id]
    assert [n.id for n in app.admin.notifications.list(user_id=u.id)] == [second.id]


def test_users_only_touch_their_own(stack: StackHandle, app: AppKit) -> None:
    a, b = make_user(stack), make_user(stack)
    note = app.admin.notifications.send(a.id, title="For A")
    bob = app.as_user(b.token).notifications
    assert bob.list() == [] and bob.unread_count() == 0
    assert bob.mark_read([note.id]) == 0
    assert bob.delete([note.id]) == 0
    assert app.as_user(a.token).notifications.unread_count() == 1


def org_of(stack: StackHandle) -> tuple[dict[str, OrgUser], str]:
    users = {role: make_user(stack) for role in ("owner", "admin", "member", "viewer")}
    org = build_org(stack.db_url, {role: u.id for role, u in users.items()})
    return users, org.id


def test_org_admin_notifies_members(stack: StackHandle, app: AppKit) -> None:
    users, org_id = org_of(stack)
    outsider = make_user(stack)
    admin = app.as_user(users["admin"].token).notifications
    assert admin.send_to_org(org_id, title="Maintenance tonight", kind="ops") == 3  # not the sender
    for role in ("owner", "member", "viewer"):
        [n] = app.as_user(users[role].token).notifications.list(org_id=org_id)
        assert (n.title, str(n.org_id), str(n.sent_by)) == ("Maintenance tonight", org_id, users["admin"].id)
    assert admin.list(org_id=org_id) == []
    assert admin.send_to_org(org_id, title="Admins only", min_role="admin", include_sender=True) == 2
    direct = admin.send(users["viewer"].id, title="Just you", org_id=org_id)
    assert str(direct.user_id) == users["viewer"].id
    with pytest.raises(errors.PermissionDenied):
        admin.send(outsider.id, title="spam", org_id=org_id)  # not a member
    with pytest.raises(errors.PermissionDenied):
        admin.send(users["viewer"].id, title="no org")  # a user needs an org they administer
    for role in ("member", "viewer"):
        with pytest.raises(errors.PermissionDenied):
            app.as_user(users[role].token).notifications.send_to_org(org_id, title="x")
    _, other_org = org_of(stack)
    with pytest.raises(errors.PermissionDenied):
        admin.send_to_org(other_org, title="x")
    assert app.admin.notifications.send_to_org(org_id, title="From the service") == 4


def test_stream_delivers_only_the_recipients_rows(stack: StackHandle, app: AppKit) -> None:
    a, b = make_user(stack), make_user(stack)
    alice = app.as_user(a.token)
    bob = app.as_user(b.token)
    # bob listens to the whole table with no filter: only RLS stands between him and alice's rows
    with alice.notifications.stream() as mine, bob.realtime.changes(Notification, events="INSERT") as everything:
        time.sleep(0.3)
        app.admin.notifications.send(a.id, title="secret for alice")
        app.admin.notifications.send(b.id, title="for bob")
        got = mine.get(timeout=15)
        assert got.event == "INSERT" and got.new is not None and got.new.title == "secret for alice"
        seen = everything.get(timeout=15)
        assert seen.new is not None and seen.new.title == "for bob"  # alice's, sent first, never arrived
    alice.realtime.close()
    bob.realtime.close()


async def test_async_stream_and_methods(stack: StackHandle) -> None:
    u = make_user(stack)
    async with make_async_app(stack) as app:
        me = app.as_user(u.token).notifications
        async with me.stream() as feed:
            await asyncio.sleep(0.3)
            await app.admin.notifications.send(u.id, title="async hello")
            change = await asyncio.wait_for(feed.__anext__(), 15)
            assert change.new is not None and change.new.title == "async hello"
        assert await me.unread_count() == 1
        assert await me.mark_all_read() == 1


def test_stream_needs_a_caller(app: AppKit) -> None:
    with pytest.raises(errors.AuthError):
        app.notifications.stream()


BAD_SEND: list[dict[str, Any]] = [
    {"title": ""}, {"title": "x" * 201}, {"title": 5}, {"title": "a\x00"}, {"title": "t", "body": 3},
    {"title": "t", "body": "x" * 10001}, {"title": "t", "data": []}, {"title": "t", "data": {"x": float("inf")}},
    {"title": "t", "data": {"x": "y" * 20000}}, {"title": "t", "kind": "Bad Kind"}, {"title": "t", "kind": ""},
    {"title": "t", "org_id": "nope"},
]


@pytest.mark.parametrize("kwargs", BAD_SEND)
def test_send_bad_input(stack: StackHandle, app: AppKit, kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError):
        app.admin.notifications.send(str(uuid.uuid4()), **kwargs)


@pytest.mark.parametrize("user_id", ["nope", 7, None])
def test_send_bad_user(app: AppKit, user_id: Any) -> None:
    with pytest.raises(errors.ValidationError):
        app.admin.notifications.send(user_id, title="t")


def test_send_unknown_user_is_not_found(app: AppKit) -> None:
    with pytest.raises(errors.NotFound):
        app.admin.notifications.send(uuid.uuid4(), title="t")


@pytest.mark.parametrize("kwargs", [
    {"org_id": "x", "title": "t"}, {"org_id": str(uuid.uuid4()), "title": ""},
    {"org_id": str(uuid.uuid4()), "title": "t", "min_role": "boss"},
    {"org_id": str(uuid.uuid4()), "title": "t", "include_sender": "yes"},
])
def test_send_to_org_bad_input(app: AppKit, kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError):
        app.admin.notifications.send_to_org(**kwargs)


@pytest.mark.parametrize("call", [
    lambda n: n.mark_read([]), lambda n: n.mark_read("abc"), lambda n: n.mark_read(["nope"]),
    lambda n: n.mark_read([str(uuid.uuid4())] * 1001), lambda n: n.delete([]), lambda n: n.delete(None),
    lambda n: n.delete([1]), lambda n: n.list(limit=0), lambda n: n.list(limit=1001), lambda n: n.list(org_id="x"),
    lambda n: n.list(kind="NO"), lambda n: n.list(user_id="x"), lambda n: n.unread_count(org_id="x"),
])
def test_read_side_bad_input(stack: StackHandle, app: AppKit, call: Any) -> None:
    u = make_user(stack)
    with pytest.raises(errors.ValidationError):
        call(app.as_user(u.token).notifications)


def test_sql_checks_for_raw_clients(stack: StackHandle) -> None:
    r = service(stack).rpc("send_notification", {"user_id": str(uuid.uuid4()), "title": "", "kind": "info"})
    assert r.status_code == 400 and r.json()["code"] == "22023"
    r = service(stack).rpc("notify_org", {"org_id": str(uuid.uuid4()), "title": "t", "min_role": "boss"})
    assert r.status_code == 400 and r.json()["code"] == "22023"


def test_rls_matrix(stack: StackHandle) -> None:
    users, org_id = org_of(stack)
    outsider = make_user(stack)
    recipient = users["viewer"]
    callers: dict[str, Caller] = {"anon": anon(stack), "service_role": service(stack)}
    for name, u in (("recipient", recipient), ("org_admin", users["admin"]), ("org_member", users["member"]),
                    ("outsider", outsider)):
        callers[name] = Caller(name, stack.api_url, stack.anon_key, u.token, u.id)

    def fresh() -> str:
        return str(sql(stack, "insert into appkit.notifications (user_id, org_id, title) values (%s, %s, 'probe') "
                              "returning id", (recipient.id, org_id))[0][0])

    def state(nid: str) -> tuple[Any, ...] | None:
        rows = sql(stack, "select title, read_at is not null from appkit.notifications where id = %s", (nid,))
        return rows[0] if rows else None

    def reads(c: Caller) -> bool:
        nid = fresh()
        r = c.get("notifications", params={"id": f"eq.{nid}"})
        return r.status_code == 200 and len(r.json()) == 1

    def inserts(c: Caller) -> bool:
        title = uuid.uuid4().hex
        c.post("notifications", {"user_id": recipient.id, "title": title})
        return sql(stack, "select count(*) from appkit.notifications where title = %s", (title,)) == [(1,)]

    def marks(c: Caller) -> bool:
        nid = fresh()
        c.patch("notifications", {"read_at": "2030-01-01T00:00:00Z"}, params={"id": f"eq.{nid}"})
        return state(nid) == ("probe", True)

    def retitles(c: Caller) -> bool:
        nid = fresh()
        c.patch("notifications", {"title": "forged"}, params={"id": f"eq.{nid}"})
        return state(nid) == ("forged", False)

    def deletes(c: Caller) -> bool:
        nid = fresh()
        c.delete("notifications", params={"id": f"eq.{nid}"})
        return state(nid) is None

    def rpc_marks(c: Caller) -> bool:
        nid = fresh()
        c.rpc("mark_notifications_read", {"ids": [nid]})
        return state(nid) == ("probe", True)

    def rpc_sends(c: Caller) -> bool:
        title = uuid.uuid4().hex
        c.rpc("send_notification", {"user_id": recipient.id, "title": title, "org_id": org_id})
        return sql(stack, "select count(*) from appkit.notifications where title = %s", (title,)) == [(1,)]

    def rpc_notifies_org(c: Caller) -> bool:
        title = uuid.uuid4().hex
        c.rpc("notify_org", {"org_id": org_id, "title": title})
        return sql(stack, "select count(*) > 0 from appkit.notifications where title = %s", (title,)) == [(True,)]

    probes: list[Probe] = []
    for name, c in callers.items():
        probes += [
            Probe("appkit.notifications (recipient's)", "select", name, name in ("recipient", "service_role"),
                  lambda c=c: reads(c)),
            Probe("appkit.notifications", "insert", name, name == "service_role", lambda c=c: inserts(c)),
            Probe("appkit.notifications (recipient's)", "update read_at", name, name in ("recipient", "service_role"),
                  lambda c=c: marks(c)),
            Probe("appkit.notifications (recipient's)", "update title", name, name == "service_role",
                  lambda c=c: retitles(c)),
            Probe("appkit.notifications (recipient's)", "delete", name, name in ("recipient", "service_role"),
                  lambda c=c: deletes(c)),
            Probe("rpc appkit.mark_notifications_read", "execute", name, name == "recipient",
                  lambda c=c: rpc_marks(c)),
            Probe("rpc appkit.send_notification (org)", "execute", name, name in ("org_admin", "service_role"),
                  lambda c=c: rpc_sends(c)),
            Probe("rpc appkit.notify_org", "execute", name, name in ("org_admin", "service_role"),
                  lambda c=c: rpc_notifies_org(c)),
            Probe("rpc appkit._notification_checks", "execute", name, name == "service_role",
                  lambda c=c: c.rpc("_notification_checks", {"title": "t", "body": None, "data": {}, "kind": "x"})
                  .status_code == 200),
        ]
    assert_matrix(probes)


def test_docs_example_runs(stack: StackHandle) -> None:
    env = {**os.environ, "SUPABASE_URL": stack.api_url, "SUPABASE_ANON_KEY": stack.anon_key,
           "SUPABASE_SERVICE_ROLE_KEY": stack.service_role_key}
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "notifications_live.py")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "live: Your export is ready" in proc.stdout
    assert "unread: 2" in proc.stdout
    assert "after mark_all_read: 0" in proc.stdout
