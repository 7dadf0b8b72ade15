"""Profiles: sql/0032_profiles.sql (trigger on auth.users, RLS) and app.profiles."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from appkit import AppKit, errors
from tests.orgs_support import build_org, make_user
from tests.sdk_support import make_app, make_async_app
from tests.support import REPO, StackHandle
from tests.svc_support import PASSWORD, Caller, Probe, anon, assert_matrix, new_email, service, sql


@pytest.fixture()
def app(stack: StackHandle) -> Iterator[AppKit]:
    client = make_app(stack)
    yield client
    client.close()


def signup(stack: StackHandle, data: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{stack.api_url}/auth/v1/signup", headers={"apikey": stack.anon_key}, timeout=30,
                   json={"email": new_email("prof"), "password": PASSWORD, "data": data})
    r.raise_for_status()
    return dict(r.json())


def profile_row(stack: StackHandle, user_id: str) -> tuple[Any, ...] | None:
    rows = sql(stack, "select display_name, avatar_url, metadata from appkit.profiles where user_id = %s",
               (user_id,))
    return rows[0] if rows else None


def test_signup_creates_a_profile_from_metadata(stack: StackHandle) -> None:
    a = signup(stack, {"full_name": "Ada Lovelace", "avatar_url": "https://example.com/ada.png"})
    assert profile_row(stack, a["user"]["id"]) == ("Ada Lovelace", "https://example.com/ada.png", {})
    b = signup(stack, {"display_name": "x" * 500, "picture": "javascript:alert(1)"})
    assert profile_row(stack, b["user"]["id"]) == ("x" * 200, None, {})  # never fails the sign-up
    c = signup(stack, {})
    assert profile_row(stack, c["user"]["id"]) == (None, None, {})
    admin = make_user(stack)  # created through the admin API
    assert profile_row(stack, admin.id) is not None


def test_profile_goes_with_the_user(stack: StackHandle) -> None:
    u = make_user(stack)
    assert profile_row(stack, u.id) is not None
    r = httpx.delete(f"{stack.api_url}/auth/v1/admin/users/{u.id}", timeout=30,
                     headers={"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"})
    assert r.status_code == 200, r.text
    assert profile_row(stack, u.id) is None


def test_me_update_me_and_co_members(stack: StackHandle, app: AppKit) -> None:
    owner, member, outsider = make_user(stack), make_user(stack), make_user(stack)
    build_org(stack.db_url, {"owner": owner.id, "member": member.id})
    me = app.as_user(owner.token)
    assert str(me.profiles.me().user_id) == owner.id
    updated = me.profiles.update_me(display_name="Owner", avatar_url="https://example.com/o.png",
                                    metadata={"tz": "Europe/Paris"})
    assert (updated.display_name, updated.avatar_url, updated.metadata) == \
        ("Owner", "https://example.com/o.png", {"tz": "Europe/Paris"})
    assert updated.updated_at is not None and updated.created_at is not None
    assert updated.updated_at > updated.created_at
    cleared = me.profiles.update_me(avatar_url=None)
    assert cleared.avatar_url is None and cleared.display_name == "Owner"  # untouched fields kept
    assert app.as_user(member.token).profiles.get(owner.id).display_name == "Owner"  # co-member reads
    with pytest.raises(errors.NotFound):
        app.as_user(outsider.token).profiles.get(owner.id)
    with pytest.raises(errors.NotFound):
        me.profiles.get(outsider.id)
    assert app.admin.profiles.get(outsider.id).user_id is not None


async def test_async_profiles(stack: StackHandle) -> None:
    u = make_user(stack)
    async with make_async_app(stack) as app:
        me = app.as_user(u.token).profiles
        assert (await me.update_me(display_name="Async")).display_name == "Async"
        assert (await me.me()).display_name == "Async"


@pytest.mark.parametrize("kwargs", [
    {}, {"display_name": 5}, {"display_name": "x" * 201}, {"display_name": "a\x00b"},
    {"avatar_url": "ftp://x"}, {"avatar_url": "not a url"}, {"avatar_url": "https://" + "x" * 2048},
    {"metadata": []}, {"metadata": None}, {"metadata": {"a": float("nan")}}, {"metadata": {"a": object()}},
    {"metadata": {"big": "x" * 20000}},
])
def test_update_me_bad_input(stack: StackHandle, app: AppKit, kwargs: dict[str, Any]) -> None:
    u = make_user(stack)
    with pytest.raises(errors.ValidationError):
        app.as_user(u.token).profiles.update_me(**kwargs)


@pytest.mark.parametrize("bad", ["nope", 42, None, ""])
def test_get_bad_user_id(app: AppKit, bad: Any) -> None:
    with pytest.raises(errors.ValidationError):
        app.admin.profiles.get(bad)


def test_me_needs_a_user(app: AppKit) -> None:
    for client in (app, app.admin):
        with pytest.raises(errors.AuthError):
            client.profiles.me()
        with pytest.raises(errors.AuthError):
            client.profiles.update_me(display_name="x")


def test_sql_constraints_hold_for_raw_clients(stack: StackHandle) -> None:
    u = make_user(stack)
    c = Caller("self", stack.api_url, stack.anon_key, u.token, u.id)
    r = c.patch("profiles", {"avatar_url": "javascript:x"}, params={"user_id": f"eq.{u.id}"})
    assert r.status_code == 400 and r.json()["code"] == "23514"
    r = c.patch("profiles", {"metadata": [1, 2]}, params={"user_id": f"eq.{u.id}"})
    assert r.status_code == 400


def test_rls_matrix(stack: StackHandle) -> None:
    me, co, outsider = make_user(stack), make_user(stack), make_user(stack)
    build_org(stack.db_url, {"owner": me.id, "viewer": co.id})
    callers = {"anon": anon(stack), "service_role": service(stack)}
    for name, u in (("self", me), ("co_member", co), ("outsider", outsider)):
        callers[name] = Caller(name, stack.api_url, stack.anon_key, u.token, u.id)

    def reads(c: Caller) -> bool:
        r = c.get("profiles", params={"user_id": f"eq.{me.id}"})
        return r.status_code == 200 and len(r.json()) == 1

    def inserts(c: Caller) -> bool:
        ghost = make_user(stack)
        sql(stack, "delete from appkit.profiles where user_id = %s", (ghost.id,))
        c.post("profiles", {"user_id": ghost.id, "display_name": "forged"})
        return profile_row(stack, ghost.id) is not None

    def updates(c: Caller) -> bool:
        mark = uuid.uuid4().hex[:8]
        c.patch("profiles", {"display_name": mark}, params={"user_id": f"eq.{me.id}"})
        return profile_row(stack, me.id)[0] == mark  # type: ignore[index]

    def updates_key(c: Caller) -> bool:
        sql(stack, "update appkit.profiles set created_at = now() where user_id = %s", (me.id,))
        c.patch("profiles", {"created_at": "2000-01-01T00:00:00Z"}, params={"user_id": f"eq.{me.id}"})
        return sql(stack, "select created_at < '2001-01-01' from appkit.profiles where user_id = %s",
                   (me.id,)) == [(True,)]

    def deletes(c: Caller) -> bool:
        victim = make_user(stack)
        build_org(stack.db_url, {"owner": victim.id, "viewer": co.id, "member": me.id})
        c.delete("profiles", params={"user_id": f"eq.{victim.id}"})
        return profile_row(stack, victim.id) is None

    probes: list[Probe] = []
    for name, c in callers.items():
        probes += [
            Probe("appkit.profiles (self's row)", "select", name, name in ("self", "co_member", "service_role"),
                  lambda c=c: reads(c)),
            Probe("appkit.profiles", "insert", name, name == "service_role", lambda c=c: inserts(c)),
            Probe("appkit.profiles (self's row)", "update name", name, name in ("self", "service_role"),
                  lambda c=c: updates(c)),
            Probe("appkit.profiles (self's row)", "update created_at", name, name == "service_role",
                  lambda c=c: updates_key(c)),
            Probe("appkit.profiles (co-member's row)", "delete", name, name == "service_role",
                  lambda c=c: deletes(c)),
        ]
    assert_matrix(probes)


def test_docs_example_runs(stack: StackHandle) -> None:
    env = {**os.environ, "SUPABASE_URL": stack.api_url, "SUPABASE_ANON_KEY": stack.anon_key,
           "SUPABASE_SERVICE_ROLE_KEY": stack.service_role_key}
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "profiles_team.py")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "new user's profile: Grace Hopper" in proc.stdout
    assert "teammate sees: Admiral Hopper" in proc.stdout
    assert "a stranger gets NotFound" in proc.stdout
