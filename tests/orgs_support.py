"""Helpers of the organizations tests: users for each actor, organizations built in SQL, clients."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from supabase import Client, ClientOptions, create_client

from tests.support import StackHandle

PASSWORD = "orgs-test-password-1"
ACTORS = ("anon", "outsider", "viewer", "member", "admin", "owner", "service_role")
MEMBER_ROLES = ("viewer", "member", "admin", "owner")


@dataclass
class TestUser:
    id: str
    email: str
    token: str


@dataclass
class OrgWorld:
    """Users playing each actor (the same users are members of every organization built)."""

    stack: StackHandle
    users: dict[str, TestUser]
    clients: dict[str, Client] = field(default_factory=dict)

    def client(self, actor: str) -> Client:
        if actor not in self.clients:
            key = self.stack.service_role_key if actor == "service_role" else self.stack.anon_key
            headers = {}
            if actor in self.users:
                headers["Authorization"] = f"Bearer {self.users[actor].token}"
            self.clients[actor] = create_client(self.stack.api_url, key, options=ClientOptions(headers=headers))
        return self.clients[actor]


def new_email(prefix: str = "org") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def make_user(stack: StackHandle, email: str | None = None, *, confirmed: bool = True) -> TestUser:
    """A user created through the auth admin API, signed in with a password."""
    email = email or new_email()
    headers = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    r = httpx.post(f"{stack.api_url}/auth/v1/admin/users", headers=headers, timeout=30,
                   json={"email": email, "password": PASSWORD, "email_confirm": confirmed})
    r.raise_for_status()
    user_id = r.json()["id"]
    r = httpx.post(f"{stack.api_url}/auth/v1/token", params={"grant_type": "password"}, timeout=30,
                   headers={"apikey": stack.anon_key}, json={"email": email, "password": PASSWORD})
    r.raise_for_status()
    return TestUser(user_id, email, r.json()["access_token"])


def make_world(stack: StackHandle) -> OrgWorld:
    users = {actor: make_user(stack, new_email(actor)) for actor in ("outsider", *MEMBER_ROLES)}
    return OrgWorld(stack, users)


def new_token() -> tuple[str, bytes]:
    token = secrets.token_hex(32)
    return token, hashlib.sha256(token.encode()).digest()


@dataclass
class BuiltOrg:
    id: str
    slug: str
    invitation_id: str
    invitation_token: str


def build_org(db_url: str, members: dict[str, str], *, name: str = "Matrix Org") -> BuiltOrg:
    """An organization with ``members`` ({role: user id}) and one pending invitation (as viewer),
    written in one transaction (the owner rule is checked at commit)."""
    slug = f"o-{uuid.uuid4().hex[:16]}"
    token, digest = new_token()
    with psycopg.connect(db_url, autocommit=False) as conn:
        org_id = str(conn.execute(
            "insert into appkit.organizations (name, slug, created_by) values (%s, %s, %s) returning id",
            (name, slug, members.get("owner")),
        ).fetchone()[0])  # type: ignore[index]
        for role, user_id in members.items():
            conn.execute("insert into appkit.memberships (org_id, user_id, role) values (%s, %s, %s)",
                         (org_id, user_id, role))
        inv_id = str(conn.execute(
            "insert into appkit.invitations (org_id, role, token_hash, expires_at) "
            "values (%s, 'viewer', %s, now() + interval '1 day') returning id",
            (org_id, digest),
        ).fetchone()[0])  # type: ignore[index]
        conn.commit()
    return BuiltOrg(org_id, slug, inv_id, token)


def wait_for_appkit_schema(stack: StackHandle, timeout: float = 20) -> None:
    """Wait until REST serves appkit's tables (the schema cache after the migrations)."""
    headers = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}",
               "Accept-Profile": "appkit"}
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{stack.api_url}/rest/v1/organizations", params={"limit": "0"}, headers=headers)
        if r.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"REST never served appkit.organizations: {r.status_code} {r.text[:200]}")
        time.sleep(0.1)


def render_matrix(rows: list[tuple[str, str, dict[str, str]]], actors: tuple[str, ...] = ACTORS) -> str:
    """A text table: one line per (object, operation), one column per actor."""
    head = f"{'object':<34} {'op':<8} " + " ".join(f"{a:<12}" for a in actors)
    lines = [head, "-" * len(head)]
    for obj, op, cells in rows:
        lines.append(f"{obj:<34} {op:<8} " + " ".join(f"{cells.get(a, ''):<12}" for a in actors))
    return "\n".join(lines)


def one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return None if row is None else row[0]
