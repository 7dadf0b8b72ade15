"""docs/orgs.md's SQL, applied as a user's migration would, behaves as the page says: an
org-scoped table and org-scoped storage (members read, members write, admins delete), and a
project's own permission."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from appkit import AppKit, errors
from appkit.orgs import Organization, Role
from tests.orgs_support import wait_for_appkit_schema
from tests.sdk_support import make_app, require, signed_up
from tests.support import REPO, StackHandle

DOC = REPO / "docs" / "orgs.md"


def sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def applied(stack: StackHandle) -> Iterator[None]:
    require(stack, "rest", "auth", "storage")
    wait_for_appkit_schema(stack)
    permission, table, storage = sql_blocks()
    assert "role_permissions" in permission and "public.projects" in table and "storage.objects" in storage
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("drop table if exists public.projects")
        for name in ("read", "insert", "update", "delete"):
            conn.execute(f"drop policy if exists org_files_{name} on storage.objects")
        conn.execute(permission)
        conn.execute(table)
        conn.execute(storage)
        conn.execute("notify pgrst, 'reload schema'")
    headers = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    deadline = time.monotonic() + 15
    while httpx.get(f"{stack.api_url}/rest/v1/projects?limit=0", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "REST never served public.projects"
        time.sleep(0.1)
    yield
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("delete from appkit.role_permissions where permission = 'reports.export'")


def team(app: AppKit) -> tuple[Organization, dict[str, AppKit]]:
    owner = app.as_user(signed_up(app))
    org = owner.orgs.create("Docs Org", f"docs-{uuid.uuid4().hex[:10]}")
    people = {"owner": owner}
    for role in (Role.admin, Role.member, Role.viewer):
        me = app.as_user(signed_up(app))
        me.orgs.accept(owner.orgs.invite(org, role=role).token or "")
        people[role.value] = me
    people["outsider"] = app.as_user(signed_up(app))
    return org, people


def rest(stack: StackHandle, me: AppKit) -> Any:
    """supabase-py's REST client carrying this user's token (as an app using supabase-js would)."""
    assert me.session is not None
    options = ClientOptions(headers={"Authorization": f"Bearer {me.session.access_token}"})
    return create_client(stack.api_url, stack.anon_key, options=options).postgrest


def test_org_scoped_table(applied: None, stack: StackHandle) -> None:
    app = make_app(stack)
    org, people = team(app)
    row = {"org_id": str(org.id), "name": "Apollo"}
    for who in ("viewer", "outsider"):
        with pytest.raises(APIError) as info:
            rest(stack, people[who]).from_("projects").insert(row).execute()
        assert info.value.code == "42501", who
    created = rest(stack, people["member"]).from_("projects").insert(row).execute().data[0]
    for who in ("viewer", "member", "admin", "owner"):
        got = rest(stack, people[who]).from_("projects").select("name").eq("org_id", str(org.id)).execute().data
        assert got == [{"name": "Apollo"}], who
    assert rest(stack, people["outsider"]).from_("projects").select("id").execute().data == []
    assert rest(stack, people["member"]).from_("projects").delete().eq("id", created["id"]).execute().data == []
    deleted = rest(stack, people["admin"]).from_("projects").delete().eq("id", created["id"]).execute().data
    assert [r["id"] for r in deleted] == [created["id"]]

    # the project's own permission
    assert people["admin"].rbac.has(org, permission="reports.export")
    assert people["owner"].rbac.has(org, permission="reports.export")
    assert not people["member"].rbac.has(org, permission="reports.export")
    app.close()


def test_org_scoped_storage(applied: None, stack: StackHandle) -> None:
    app = make_app(stack)
    org, people = team(app)
    path = f"{org.id}/plan.txt"
    with pytest.raises(errors.AppKitError):
        people["viewer"].files.upload("org-files", path, b"no")
    with pytest.raises(errors.AppKitError):
        people["outsider"].files.upload("org-files", path, b"no")
    people["member"].files.upload("org-files", path, b"v1")
    people["member"].files.upload("org-files", path, b"v2", upsert=True)
    for who in ("viewer", "member", "admin", "owner"):
        assert people[who].files.download("org-files", path) == b"v2", who
    with pytest.raises(errors.AppKitError):
        people["outsider"].files.download("org-files", path)
    assert people["member"].files.remove("org-files", path) == []  # not an admin: nothing removed
    assert people["viewer"].files.download("org-files", path) == b"v2"
    assert people["admin"].files.remove("org-files", path) == [path]
    # a first folder that is not a UUID is simply not anyone's organization
    with pytest.raises(errors.AppKitError):
        people["owner"].files.upload("org-files", "not-a-uuid/x.txt", b"x")
    app.close()
