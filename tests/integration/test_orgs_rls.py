"""RLS matrix of appkit's organizations schema: every table and RPC x operation x actor,
through HTTP with the official client (supabase-py), checked against the database's state."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import psycopg
import pytest
from postgrest.exceptions import APIError

from tests.orgs_support import (
    ACTORS,
    MEMBER_ROLES,
    BuiltOrg,
    OrgWorld,
    build_org,
    make_user,
    make_world,
    new_token,
    one,
    render_matrix,
    wait_for_appkit_schema,
)
from tests.support import StackHandle

ALL = frozenset(ACTORS)
USERS = frozenset(("outsider", *MEMBER_ROLES))
MEMBERS = frozenset(MEMBER_ROLES)
SERVICE = frozenset({"service_role"})


@pytest.fixture(scope="module")
def world(stack: StackHandle) -> Iterator[OrgWorld]:
    wait_for_appkit_schema(stack)
    yield make_world(stack)


@dataclass
class Ctx:
    world: OrgWorld
    org: BuiltOrg
    actor: str
    conn: psycopg.Connection[tuple[Any, ...]]

    def api(self) -> Any:
        return self.world.client(self.actor).schema("appkit")

    def uid(self, role: str) -> str:
        return self.world.users[role].id

    def q(self, query: str, *params: Any) -> Any:
        return one(self.conn, query, params)


def call(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """(succeeded, data) of one client call; an API error is a refusal."""
    try:
        return True, fn().data
    except APIError:
        return False, None


# -- tables --------------------------------------------------------------------------------

def org_select(c: Ctx) -> bool:
    ok, data = call(lambda: c.api().table("organizations").select("id,name").eq("id", c.org.id).execute())
    return ok and any(r["id"] == c.org.id for r in data)


def org_insert(c: Ctx) -> bool:
    slug = f"ins-{uuid.uuid4().hex[:12]}"
    call(lambda: c.api().table("organizations").insert({"name": "Inserted", "slug": slug}).execute())
    return bool(c.q("select count(*) from appkit.organizations where slug = %s", slug))


def org_update(c: Ctx) -> bool:
    call(lambda: c.api().table("organizations").update({"name": "Renamed"}).eq("id", c.org.id).execute())
    return bool(c.q("select name = 'Renamed' from appkit.organizations where id = %s", c.org.id))


def org_delete(c: Ctx) -> bool:
    call(lambda: c.api().table("organizations").delete().eq("id", c.org.id).execute())
    return not c.q("select count(*) from appkit.organizations where id = %s", c.org.id)


def mem_select(c: Ctx) -> bool:
    ok, data = call(lambda: c.api().table("memberships").select("user_id,role").eq("org_id", c.org.id).execute())
    others = {r["user_id"] for r in data or []} - {c.world.users[c.actor].id if c.actor in c.world.users else ""}
    return ok and bool(others)


def mem_insert(c: Ctx) -> bool:
    row = {"org_id": c.org.id, "user_id": c.uid("outsider"), "role": "admin"}
    call(lambda: c.api().table("memberships").insert(row).execute())
    return bool(c.q("select count(*) from appkit.memberships where org_id = %s and user_id = %s",
                    c.org.id, c.uid("outsider")))


def mem_update(c: Ctx) -> bool:
    call(lambda: c.api().table("memberships").update({"role": "admin"}).eq("org_id", c.org.id)
         .eq("user_id", c.uid("member")).execute())
    return bool(c.q("select role = 'admin' from appkit.memberships where org_id = %s and user_id = %s",
                    c.org.id, c.uid("member")))


def mem_delete(c: Ctx) -> bool:
    call(lambda: c.api().table("memberships").delete().eq("org_id", c.org.id).eq("user_id", c.uid("member")).execute())
    return not c.q("select count(*) from appkit.memberships where org_id = %s and user_id = %s",
                   c.org.id, c.uid("member"))


def _perm(c: Ctx) -> str:
    name = f"matrix.p{uuid.uuid4().hex[:10]}"
    c.conn.execute("insert into appkit.role_permissions (role, permission) values ('viewer', %s)", (name,))
    return name


def perm_select(c: Ctx) -> bool:
    ok, data = call(lambda: c.api().table("role_permissions").select("role,permission").execute())
    return ok and bool(data)


def perm_insert(c: Ctx) -> bool:
    name = f"matrix.i{uuid.uuid4().hex[:10]}"
    call(lambda: c.api().table("role_permissions").insert({"role": "viewer", "permission": name}).execute())
    return bool(c.q("select count(*) from appkit.role_permissions where permission = %s", name))


def perm_update(c: Ctx) -> bool:
    name = _perm(c)
    call(lambda: c.api().table("role_permissions").update({"role": "owner"}).eq("permission", name).execute())
    return bool(c.q("select role = 'owner' from appkit.role_permissions where permission = %s", name))


def perm_delete(c: Ctx) -> bool:
    name = _perm(c)
    call(lambda: c.api().table("role_permissions").delete().eq("permission", name).execute())
    return not c.q("select count(*) from appkit.role_permissions where permission = %s", name)


def inv_select(c: Ctx) -> bool:
    ok, data = call(lambda: c.api().table("invitations").select("id,role,email")
                    .eq("id", c.org.invitation_id).execute())
    return ok and bool(data)


def inv_select_hash(c: Ctx) -> bool:
    ok, data = call(lambda: c.api().table("invitations").select("id,token_hash")
                    .eq("id", c.org.invitation_id).execute())
    return ok and bool(data)


def inv_insert(c: Ctx) -> bool:
    _, digest = new_token()
    row = {"org_id": c.org.id, "role": "admin", "token_hash": "\\x" + digest.hex(),
           "expires_at": "2099-01-01T00:00:00Z"}
    call(lambda: c.api().table("invitations").insert(row).execute())
    return bool(c.q("select count(*) from appkit.invitations where token_hash = %s", digest))


def inv_update(c: Ctx) -> bool:
    call(lambda: c.api().table("invitations").update({"role": "admin"}).eq("id", c.org.invitation_id).execute())
    return bool(c.q("select role = 'admin' from appkit.invitations where id = %s", c.org.invitation_id))


def inv_delete(c: Ctx) -> bool:
    call(lambda: c.api().table("invitations").delete().eq("id", c.org.invitation_id).execute())
    return not c.q("select count(*) from appkit.invitations where id = %s", c.org.invitation_id)


# -- RPCs ----------------------------------------------------------------------------------

def rpc(name: str, params: Callable[[Ctx], dict[str, Any]],
        effect: Callable[[Ctx], bool] | None = None) -> Callable[[Ctx], bool]:
    def run(c: Ctx) -> bool:
        ok, _ = call(lambda: c.api().rpc(name, params(c)).execute())
        return ok and (effect is None or effect(c))
    run.__name__ = name
    return run


def role_of(c: Ctx, who: str) -> Any:
    return c.q("select role from appkit.memberships where org_id = %s and user_id = %s", c.org.id, c.uid(who))


def _create_params(c: Ctx) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "Made", "slug": f"mk-{uuid.uuid4().hex[:12]}"}
    if c.actor == "service_role":
        params["owner_id"] = c.uid("outsider")
    return params


def _hook_event(c: Ctx) -> dict[str, Any]:
    return {"event": {"user_id": c.uid("owner"), "claims": {"sub": c.uid("owner")}}}


CASES: list[tuple[str, str, frozenset[str], Callable[[Ctx], bool]]] = [
    ("organizations", "select", MEMBERS | SERVICE, org_select),
    # an organization is created with its owner (create_organization); a bare insert has no owner
    ("organizations", "insert", frozenset(), org_insert),
    ("organizations", "update", frozenset({"admin", "owner", "service_role"}), org_update),
    ("organizations", "delete", frozenset({"owner", "service_role"}), org_delete),
    ("memberships", "select", MEMBERS | SERVICE, mem_select),
    ("memberships", "insert", SERVICE, mem_insert),
    ("memberships", "update", SERVICE, mem_update),
    ("memberships", "delete", SERVICE, mem_delete),
    ("role_permissions", "select", USERS | SERVICE, perm_select),
    ("role_permissions", "insert", SERVICE, perm_insert),
    ("role_permissions", "update", SERVICE, perm_update),
    ("role_permissions", "delete", SERVICE, perm_delete),
    ("invitations", "select", frozenset({"admin", "owner", "service_role"}), inv_select),
    ("invitations.token_hash", "select", SERVICE, inv_select_hash),
    ("invitations", "insert", SERVICE, inv_insert),
    ("invitations", "update", SERVICE, inv_update),
    ("invitations", "delete", SERVICE, inv_delete),
    ("role_rank()", "execute", ALL, rpc("role_rank", lambda c: {"role": "admin"})),
    ("org_role()", "execute", USERS | SERVICE, rpc("org_role", lambda c: {"org_id": c.org.id})),
    ("has_org_role()", "execute", USERS | SERVICE,
     rpc("has_org_role", lambda c: {"org_id": c.org.id, "min_role": "viewer"})),
    ("has_org_permission()", "execute", USERS | SERVICE,
     rpc("has_org_permission", lambda c: {"org_id": c.org.id, "permission": "org.read"})),
    ("org_ids_with_role()", "execute", USERS | SERVICE, rpc("org_ids_with_role", lambda c: {"min_role": "viewer"})),
    ("create_organization()", "execute", USERS | SERVICE, rpc("create_organization", _create_params)),
    ("org_members()", "execute", MEMBERS | SERVICE, rpc("org_members", lambda c: {"org_id": c.org.id})),
    ("add_member()", "execute", SERVICE,
     rpc("add_member", lambda c: {"org_id": c.org.id, "user_id": c.uid("outsider"), "role": "viewer"},
         lambda c: role_of(c, "outsider") == "viewer")),
    ("set_member_role()", "execute", frozenset({"admin", "owner", "service_role"}),
     rpc("set_member_role", lambda c: {"org_id": c.org.id, "user_id": c.uid("member"), "role": "viewer"},
         lambda c: role_of(c, "member") == "viewer")),
    # removing oneself is leaving; others need members.manage and a rank at or above theirs
    ("remove_member(viewer)", "execute", frozenset({"viewer", "admin", "owner", "service_role"}),
     rpc("remove_member", lambda c: {"org_id": c.org.id, "user_id": c.uid("viewer")},
         lambda c: role_of(c, "viewer") is None)),
    ("remove_member(admin)", "execute", frozenset({"admin", "owner", "service_role"}),
     rpc("remove_member", lambda c: {"org_id": c.org.id, "user_id": c.uid("admin")},
         lambda c: role_of(c, "admin") is None)),
    ("remove_member(owner)", "execute", frozenset(),
     rpc("remove_member", lambda c: {"org_id": c.org.id, "user_id": c.uid("owner")},
         lambda c: role_of(c, "owner") is None)),
    # the owner is the only owner: leaving would leave the organization ownerless
    ("leave_organization()", "execute", frozenset({"viewer", "member", "admin"}),
     rpc("leave_organization", lambda c: {"org_id": c.org.id},
         lambda c: c.actor in c.world.users and role_of(c, c.actor) is None)),
    ("transfer_ownership()", "execute", frozenset({"owner", "service_role"}),
     rpc("transfer_ownership", lambda c: {"org_id": c.org.id, "user_id": c.uid("admin")},
         lambda c: role_of(c, "admin") == "owner" and role_of(c, "owner") == "admin")),
    ("create_invitation()", "execute", frozenset({"admin", "owner", "service_role"}),
     rpc("create_invitation", lambda c: {"org_id": c.org.id, "role": "member"},
         lambda c: bool(c.q("select count(*) from appkit.invitations where org_id = %s and role = 'member'",
                            c.org.id)))),
    ("lookup_invitation()", "execute", ALL, rpc("lookup_invitation", lambda c: {"token": c.org.invitation_token})),
    # members already belong to the organization; anon and the service role are no user
    ("accept_invitation()", "execute", frozenset({"outsider"}),
     rpc("accept_invitation", lambda c: {"token": c.org.invitation_token},
         lambda c: role_of(c, "outsider") == "viewer")),
    ("revoke_invitation()", "execute", frozenset({"admin", "owner", "service_role"}),
     rpc("revoke_invitation", lambda c: {"invitation_id": c.org.invitation_id},
         lambda c: bool(c.q("select revoked_at is not null from appkit.invitations where id = %s",
                            c.org.invitation_id)))),
    ("custom_access_token_hook()", "execute", frozenset(), rpc("custom_access_token_hook", _hook_event)),
    ("_lock_org()", "execute", frozenset(), rpc("_lock_org", lambda c: {"org_id": c.org.id})),
    ("_role_can()", "execute", frozenset(),
     rpc("_role_can", lambda c: {"role": "owner", "permission": "org.read"})),
    ("_is_service_role()", "execute", frozenset(), rpc("_is_service_role", lambda c: {})),
    ("_check_role()", "execute", frozenset(), rpc("_check_role", lambda c: {"role": "owner"})),
    ("_invitation_hash()", "execute", frozenset(), rpc("_invitation_hash", lambda c: {"token": "0" * 64})),
]


def test_rls_matrix(world: OrgWorld, stack: StackHandle) -> None:
    members = {role: world.users[role].id for role in MEMBER_ROLES}
    rows: list[tuple[str, str, dict[str, str]]] = []
    leaks = 0
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        try:
            for obj, op, allowed, check in CASES:
                cells: dict[str, str] = {}
                for actor in ACTORS:
                    org = build_org(stack.db_url, members)
                    got = check(Ctx(world, org, actor, conn))
                    want = actor in allowed
                    cells[actor] = ("allow" if got else "deny") + ("" if got == want else " !!")
                    leaks += got != want
                rows.append((obj, op, cells))
        finally:
            conn.execute("delete from appkit.role_permissions where permission like 'matrix.%'")
    table = render_matrix(rows)
    print(table)
    assert leaks == 0, f"{leaks} cell(s) differ from the expected matrix (marked !!):\n{table}"


def test_every_appkit_object_is_in_the_matrix(db: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Every organizations table and API-callable function has a row in the matrix above; the
    functions without one (trigger functions, internals taking a row) no API role may execute."""
    covered = {obj.split(".")[0].split("(")[0] for obj, _, _, _ in CASES}
    defined_tables, defined_functions = _objects_in_orgs_sql()
    assert defined_tables <= covered, defined_tables - covered
    for name in defined_functions - covered:
        for role in ("anon", "authenticated", "service_role"):
            can = one(db, "select bool_or(has_function_privilege(%s, p.oid, 'execute')) from pg_proc p "
                          "join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'appkit' and p.proname = %s",
                      (role, name))
            assert can is False, f"{role} may execute appkit.{name}, which the matrix does not cover"


def _objects_in_orgs_sql() -> tuple[set[str], set[str]]:
    import re

    from appkit.db.bundled import bundled_migrations

    tables: set[str] = set()
    functions: set[str] = set()
    for b in bundled_migrations():
        if b.seq.startswith("001"):
            tables |= set(re.findall(r"create table appkit\.(\w+)", b.sql))
            functions |= set(re.findall(r"create or replace function appkit\.(\w+)", b.sql))
    assert tables and functions
    return tables, functions


def test_helpers_answer_per_role(world: OrgWorld, stack: StackHandle) -> None:
    """has_org_role / has_org_permission / org_ids_with_role give each actor exactly its rank."""
    members = {role: world.users[role].id for role in MEMBER_ROLES}
    org = build_org(stack.db_url, members)
    ranks = {"outsider": 0, "viewer": 1, "member": 2, "admin": 3, "owner": 4}
    for actor, rank in ranks.items():
        api = world.client(actor).schema("appkit")
        for i, role in enumerate(("viewer", "member", "admin", "owner"), start=1):
            got = api.rpc("has_org_role", {"org_id": org.id, "min_role": role}).execute().data
            assert got is (rank >= i), (actor, role, got)
        assert api.rpc("has_org_permission", {"org_id": org.id, "permission": "org.update"}).execute().data \
            is (rank >= 3), actor
        assert api.rpc("has_org_permission", {"org_id": org.id, "permission": "no.such"}).execute().data is False
        ids = api.rpc("org_ids_with_role", {"min_role": "viewer"}).execute().data
        assert (org.id in ids) is (rank >= 1), actor
        with pytest.raises(APIError) as info:
            api.rpc("has_org_role", {"org_id": org.id, "min_role": "boss"}).execute()
        assert info.value.code == "22023"


def test_claim_is_preferred_when_present(world: OrgWorld, stack: StackHandle) -> None:
    """A token carrying appkit_orgs is believed (that is the trade-off: stale until refresh)."""
    members = {role: world.users[role].id for role in MEMBER_ROLES}
    org = build_org(stack.db_url, members)
    outsider = world.users["outsider"]
    claims = jwt.decode(outsider.token, options={"verify_signature": False})
    claims["appkit_orgs"] = {org.id: "admin", "not-a-uuid": "owner"}
    token = jwt.encode(claims, stack.jwt_secret, algorithm="HS256")
    from supabase import ClientOptions, create_client

    api = create_client(stack.api_url, stack.anon_key,
                        options=ClientOptions(headers={"Authorization": f"Bearer {token}"})).schema("appkit")
    assert api.rpc("has_org_role", {"org_id": org.id, "min_role": "admin"}).execute().data is True
    assert api.rpc("has_org_role", {"org_id": org.id, "min_role": "owner"}).execute().data is False
    assert api.rpc("org_ids_with_role", {"min_role": "member"}).execute().data == [org.id]
    assert api.rpc("has_org_permission", {"org_id": org.id, "permission": "members.manage"}).execute().data is True
    rows = api.table("organizations").select("id").eq("id", org.id).execute().data
    assert [r["id"] for r in rows] == [org.id]
    # writes re-read the tables: the claimed admin cannot manage members it is not among
    with pytest.raises(APIError) as info:
        api.rpc("set_member_role", {"org_id": org.id, "user_id": world.users["member"].id, "role": "viewer"}).execute()
    assert info.value.code == "P0002"
    # an empty claim means "no organizations", even for a real member
    viewer_claims = jwt.decode(world.users["viewer"].token, options={"verify_signature": False})
    viewer_claims["appkit_orgs"] = {}
    token = jwt.encode(viewer_claims, stack.jwt_secret, algorithm="HS256")
    api = create_client(stack.api_url, stack.anon_key,
                        options=ClientOptions(headers={"Authorization": f"Bearer {token}"})).schema("appkit")
    assert api.rpc("has_org_role", {"org_id": org.id, "min_role": "viewer"}).execute().data is False


def test_custom_access_token_hook(db: psycopg.Connection[tuple[Any, ...]], stack: StackHandle) -> None:
    owner, admin = make_user(stack), make_user(stack)
    first = build_org(stack.db_url, {"owner": owner.id, "admin": admin.id})
    second = build_org(stack.db_url, {"owner": admin.id})
    event = {"user_id": admin.id, "claims": {"sub": admin.id, "role": "authenticated"},
             "authentication_method": "password"}
    with db.transaction():
        db.execute("set local role supabase_auth_admin")
        out = one(db, "select appkit.custom_access_token_hook(%s::jsonb)", (json.dumps(event),))
    assert out["claims"]["appkit_orgs"] == {first.id: "admin", second.id: "owner"}
    assert out["claims"]["role"] == "authenticated"
    assert out["authentication_method"] == "password"
    # a user without organizations gets an empty object; a malformed event is returned unchanged
    lone = one(db, "select appkit.custom_access_token_hook(%s::jsonb)",
               (json.dumps({"user_id": str(uuid.uuid4()), "claims": {}}),))
    assert lone["claims"]["appkit_orgs"] == {}
    bad = {"user_id": "nope", "claims": {"sub": "x"}}
    assert one(db, "select appkit.custom_access_token_hook(%s::jsonb)", (json.dumps(bad),)) == bad
    # past 100 organizations the claim is left out (the helpers then read the tables)
    with db.transaction():
        for i in range(100):
            org_id = one(db, "insert into appkit.organizations (name, slug) values ('Many', %s) returning id",
                         (f"many-{uuid.uuid4().hex[:12]}-{i}",))
            db.execute("insert into appkit.memberships (org_id, user_id, role) values (%s, %s, 'owner')",
                       (org_id, admin.id))
    many = one(db, "select appkit.custom_access_token_hook(%s::jsonb)", (json.dumps(event),))
    assert "appkit_orgs" not in many["claims"] and many["claims"]["sub"] == admin.id
    # the API roles may not call it
    for role in ("anon", "authenticated"):
        with db.transaction(), pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(f"set local role {role}")
            db.execute("select appkit.custom_access_token_hook('{}'::jsonb)")
