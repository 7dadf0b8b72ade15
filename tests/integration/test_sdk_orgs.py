"""``app.orgs`` and ``app.rbac`` through the SDK against the local stack: typed models, typed
errors for what RLS and the RPCs refuse, invitation e-mail, bad input on every method."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from appkit import AppKit, errors
from appkit.orgs import Invitation, Membership, Organization, Role
from tests.auth_support import last_message
from tests.orgs_support import wait_for_appkit_schema
from tests.sdk_support import app, make_async_app, require, signed_up
from tests.support import StackHandle

__all__ = ["app"]
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _schema(stack: StackHandle) -> None:
    require(stack, "rest", "auth")
    wait_for_appkit_schema(stack)


def slug() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}"


def user(app: AppKit) -> tuple[AppKit, str]:
    session = signed_up(app)
    assert session.user is not None
    return app.as_user(session), str(session.user.id)


def member_of(app: AppKit, owner: AppKit, org: Organization, role: Role) -> tuple[AppKit, str]:
    me, uid = user(app)
    me.orgs.accept(owner.orgs.invite(org, role=role).token or "")
    return me, uid


def test_lifecycle(app: AppKit) -> None:
    owner, owner_id = user(app)
    org = owner.orgs.create("Acme Inc", slug(), metadata={"plan": "free"})
    assert isinstance(org, Organization) and org.role is Role.owner and org.metadata == {"plan": "free"}
    assert str(org.created_by) == owner_id
    assert [o.id for o in owner.orgs.mine()] == [org.id] and owner.orgs.mine()[0].role is Role.owner
    assert owner.orgs.get(org.slug).id == org.id == owner.orgs.get(str(org.id)).id

    renamed = owner.orgs.update(org, name="  Acme Corp ", metadata={"plan": "pro"})
    assert (renamed.name, renamed.metadata) == ("Acme Corp", {"plan": "pro"})
    assert renamed.updated_at >= org.updated_at

    inv = owner.orgs.invite(org, role="admin", expires_in=timedelta(hours=1))
    assert isinstance(inv, Invitation) and inv.token and len(inv.token) == 64 and inv.status == "pending"
    guest, guest_id = user(app)
    preview = guest.orgs.lookup_invitation(inv.token)
    assert (preview.org_slug, preview.role, preview.status) == (org.slug, Role.admin, "pending")
    joined = guest.orgs.accept(inv.token)
    assert isinstance(joined, Membership) and joined.role is Role.admin and str(joined.user_id) == guest_id
    assert guest.orgs.lookup_invitation(inv.token).status == "accepted"
    assert [i.status for i in owner.orgs.invitations(org)] == ["accepted"]
    assert owner.orgs.invitations(org, pending_only=True) == []

    members = owner.orgs.members(org)
    assert [(str(m.user_id), m.role) for m in members] == [(owner_id, Role.owner), (guest_id, Role.admin)]
    assert all(m.email and "@" in m.email for m in members)

    assert owner.orgs.set_role(org, guest_id, Role.member).role is Role.member
    owner.orgs.transfer(org, guest_id)
    assert {str(m.user_id): m.role for m in guest.orgs.members(org)} == {owner_id: Role.admin, guest_id: Role.owner}
    owner.orgs.leave(org)
    assert owner.orgs.mine() == []
    with pytest.raises(errors.NotFound):
        owner.orgs.get(org)
    guest.orgs.delete(org)
    assert guest.orgs.mine() == []


def test_rbac_has_and_require(app: AppKit) -> None:
    owner, _ = user(app)
    org = owner.orgs.create("Rbac", slug())
    viewer, _ = member_of(app, owner, org, Role.viewer)
    outsider, _ = user(app)
    assert owner.rbac.has(org, role="owner") and owner.rbac.has(org, permission="billing.manage")
    assert viewer.rbac.has(org, role=Role.viewer) and not viewer.rbac.has(org, role="member")
    assert viewer.rbac.has(org.slug, permission="org.read") and not viewer.rbac.has(org, permission="org.update")
    assert not outsider.rbac.has(org, role="viewer") and not outsider.rbac.has(org.slug, role="viewer")
    viewer.rbac.require(org, role="viewer")
    with pytest.raises(errors.PermissionDenied):
        viewer.rbac.require(org, permission="members.manage")
    with pytest.raises(errors.PermissionDenied):
        outsider.rbac.require(org, role="viewer")


def test_denials_are_typed(app: AppKit, stack: StackHandle) -> None:
    owner, owner_id = user(app)
    org = owner.orgs.create("Denials", slug())
    member, member_id = member_of(app, owner, org, Role.member)
    admin, admin_id = member_of(app, owner, org, Role.admin)
    outsider, _ = user(app)

    with pytest.raises(errors.NotFound):
        outsider.orgs.get(org)  # RLS hides it
    with pytest.raises(errors.NotFound):
        outsider.orgs.members(org)
    with pytest.raises(errors.NotFound):
        outsider.orgs.update(org, name="x")
    with pytest.raises(errors.PermissionDenied):
        member.orgs.update(org, name="mine now")
    with pytest.raises(errors.PermissionDenied):
        admin.orgs.delete(org)
    with pytest.raises(errors.PermissionDenied):
        member.orgs.invite(org)
    with pytest.raises(errors.PermissionDenied):
        admin.orgs.set_role(org, member_id, Role.owner)  # above its own role
    with pytest.raises(errors.PermissionDenied):
        admin.orgs.remove(org, owner_id)
    with pytest.raises(errors.PermissionDenied):
        admin.orgs.transfer(org, admin_id)
    with pytest.raises(errors.Conflict):
        owner.orgs.leave(org)  # the last owner
    with pytest.raises(errors.Conflict):
        owner.orgs.set_role(org, owner_id, Role.admin)
    with pytest.raises(errors.Conflict):
        owner.orgs.create("Dup", org.slug)
    with pytest.raises(errors.NotFound):
        owner.orgs.set_role(org, str(uuid.uuid4()), Role.viewer)

    used = owner.orgs.invite(org)
    outsider.orgs.accept(used.token or "")
    with pytest.raises(errors.Conflict):
        outsider.orgs.accept(used.token or "")  # already used (and already a member)
    late, _ = user(app)
    with pytest.raises(errors.Conflict, match="already used"):
        late.orgs.accept(used.token or "")

    revoked = owner.orgs.invite(org, role="viewer")
    owner.orgs.revoke_invitation(revoked)
    owner.orgs.revoke_invitation(revoked.id)  # a no-op the second time
    with pytest.raises(errors.Conflict, match="revoked"):
        late.orgs.accept(revoked.token or "")
    with pytest.raises(errors.Conflict):
        owner.orgs.revoke_invitation(used.id)  # accepted
    with pytest.raises(errors.NotFound):
        member.orgs.revoke_invitation(revoked.id)

    expired = owner.orgs.invite(org, role="viewer", expires_in=60)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("update appkit.invitations set created_at = now() - interval '2 hours', "
                     "expires_at = now() - interval '1 hour' where id = %s", (expired.id,))
    with pytest.raises(errors.Conflict, match="expired"):
        late.orgs.accept(expired.token or "")

    bound = owner.orgs.invite(org, role="member", email="Someone.Else@Example.com")
    assert bound.email == "someone.else@example.com"
    with pytest.raises(errors.PermissionDenied, match="another e-mail"):
        late.orgs.accept(bound.token or "")
    with pytest.raises(errors.NotFound):
        late.orgs.lookup_invitation("0" * 64)


def test_email_bound_invitation_accepted_by_its_address(app: AppKit) -> None:
    owner, _ = user(app)
    org = owner.orgs.create("Bound", slug())
    session = signed_up(app)
    assert session.user is not None and session.user.email
    inv = owner.orgs.invite(org, role="viewer", email=session.user.email.upper())
    assert app.as_user(session).orgs.accept(inv.token or "").role is Role.viewer


def test_invitation_email_new_address_and_existing_user(app: AppKit, stack: StackHandle) -> None:
    owner, _ = user(app)
    org = owner.orgs.create("Mailer", slug())
    fresh = f"invitee-{uuid.uuid4().hex[:10]}@example.com"
    inv = owner.orgs.invite(org, email=fresh, send_email=True, redirect_to="http://127.0.0.1:3000/join")
    assert inv.emailed
    msg = last_message(stack, fresh, kind="invite")
    assert inv.token and inv.token in (msg["redirect_to"] or msg["link"] or msg["body"])

    existing = signed_up(app)
    assert existing.user is not None and existing.user.email
    inv2 = owner.orgs.invite(org, email=existing.user.email, send_email=True, redirect_to="http://127.0.0.1:3000/j?a=1")
    msg2 = last_message(stack, existing.user.email, kind="magiclink")
    assert msg2["redirect_to"] == f"http://127.0.0.1:3000/j?a=1&invitation={inv2.token}"
    assert msg["redirect_to"] == f"http://127.0.0.1:3000/join?invitation={inv.token}"


def test_service_role_admin(app: AppKit) -> None:
    admin = app.admin
    owner_session = signed_up(app)
    assert owner_session.user is not None and owner_session.user.email
    owner_id = str(owner_session.user.id)
    org = admin.orgs.create("Admin Made", slug(), owner=owner_id)
    assert app.as_user(owner_session).orgs.mine()[0].id == org.id
    other = signed_up(app)
    assert other.user is not None and other.user.email
    added = admin.orgs.add(org.slug, other.user.email, "member")
    assert added.role is Role.member and str(added.user_id) == str(other.user.id)
    admin.orgs.transfer(org, other.user.id)
    roles = {str(m.user_id): m.role for m in admin.orgs.members(org)}
    assert roles == {owner_id: Role.admin, str(other.user.id): Role.owner}
    with pytest.raises(errors.Conflict):
        admin.orgs.add(org, other.user.id, "viewer")
    with pytest.raises(errors.NotFound):
        admin.orgs.add(org, "nobody-" + uuid.uuid4().hex[:6] + "@example.com", "viewer")
    with pytest.raises(errors.PermissionDenied):
        app.as_user(owner_session).orgs.add(org, other.user.id, "viewer")
    with pytest.raises(errors.ValidationError):
        admin.orgs.create("No owner", slug())
    admin.orgs.delete(org)
    with pytest.raises(errors.NotFound):
        admin.orgs.get(org.id)


BAD_CALLS: list[tuple[str, Callable[[AppKit, Organization], Any], type[errors.AppKitError]]] = [
    ("create: empty name", lambda me, o: me.orgs.create("  ", slug()), errors.ValidationError),
    ("create: long name", lambda me, o: me.orgs.create("x" * 201, slug()), errors.ValidationError),
    ("create: bad slug", lambda me, o: me.orgs.create("x", "Bad Slug"), errors.ValidationError),
    ("create: slug hyphen end", lambda me, o: me.orgs.create("x", "abc-"), errors.ValidationError),
    ("create: metadata list", lambda me, o: me.orgs.create("x", slug(), metadata=[1]), errors.ValidationError),
    ("create: bad owner", lambda me, o: me.orgs.create("x", slug(), owner="nope"), errors.ValidationError),
    ("create: other owner", lambda me, o: me.orgs.create("x", slug(), owner=str(uuid.uuid4())),
     errors.PermissionDenied),
    ("get: bad ref", lambda me, o: me.orgs.get("Not A Slug!"), errors.ValidationError),
    ("get: unknown slug", lambda me, o: me.orgs.get("no-such-org-" + uuid.uuid4().hex[:6]), errors.NotFound),
    ("get: unknown id", lambda me, o: me.orgs.get(uuid.uuid4()), errors.NotFound),
    ("get: int", lambda me, o: me.orgs.get(42), errors.ValidationError),
    ("update: nothing", lambda me, o: me.orgs.update(o), errors.ValidationError),
    ("update: bad slug", lambda me, o: me.orgs.update(o, slug="-x"), errors.ValidationError),
    ("update: taken slug", lambda me, o: me.orgs.update(o, slug=me.orgs.create("t", slug()).slug), errors.Conflict),
    ("delete: unknown", lambda me, o: me.orgs.delete(uuid.uuid4()), errors.NotFound),
    ("members: unknown", lambda me, o: me.orgs.members(uuid.uuid4()), errors.NotFound),
    ("invite: bad role", lambda me, o: me.orgs.invite(o, role="boss"), errors.ValidationError),
    ("invite: owner", lambda me, o: me.orgs.invite(o, role="owner"), errors.ValidationError),
    ("invite: bad email", lambda me, o: me.orgs.invite(o, email="not-an-email"), errors.ValidationError),
    ("invite: expiry", lambda me, o: me.orgs.invite(o, expires_in=5), errors.ValidationError),
    ("invite: expiry long", lambda me, o: me.orgs.invite(o, expires_in=timedelta(days=31)), errors.ValidationError),
    ("invite: send no email", lambda me, o: me.orgs.invite(o, send_email=True), errors.ValidationError),
    ("invite: send no redirect", lambda me, o: me.orgs.invite(o, email="a@b.c", send_email=True),
     errors.ValidationError),
    ("invite: bad redirect", lambda me, o: me.orgs.invite(o, email="a@b.c", send_email=True, redirect_to="ftp://x"),
     errors.ValidationError),
    ("invitations: unknown", lambda me, o: me.orgs.invitations(uuid.uuid4()), errors.NotFound),
    ("revoke: bad id", lambda me, o: me.orgs.revoke_invitation("nope"), errors.ValidationError),
    ("revoke: unknown", lambda me, o: me.orgs.revoke_invitation(uuid.uuid4()), errors.NotFound),
    ("lookup: malformed", lambda me, o: me.orgs.lookup_invitation("abc"), errors.ValidationError),
    ("lookup: upper hex", lambda me, o: me.orgs.lookup_invitation("A" * 64), errors.ValidationError),
    ("accept: malformed", lambda me, o: me.orgs.accept("x" * 64), errors.ValidationError),
    ("accept: unknown", lambda me, o: me.orgs.accept("f" * 64), errors.NotFound),
    ("set_role: bad role", lambda me, o: me.orgs.set_role(o, uuid.uuid4(), "king"), errors.ValidationError),
    ("set_role: bad user", lambda me, o: me.orgs.set_role(o, "bob", "admin"), errors.ValidationError),
    ("set_role: unknown org", lambda me, o: me.orgs.set_role(uuid.uuid4(), uuid.uuid4(), "admin"), errors.NotFound),
    ("remove: bad user", lambda me, o: me.orgs.remove(o, "bob"), errors.ValidationError),
    ("remove: unknown member", lambda me, o: me.orgs.remove(o, uuid.uuid4()), errors.NotFound),
    ("leave: unknown org", lambda me, o: me.orgs.leave(uuid.uuid4()), errors.NotFound),
    ("transfer: non-member", lambda me, o: me.orgs.transfer(o, uuid.uuid4()), errors.NotFound),
    ("transfer: bad user", lambda me, o: me.orgs.transfer(o, ""), errors.ValidationError),
    ("rbac: both", lambda me, o: me.rbac.has(o, role="admin", permission="org.read"), errors.ValidationError),
    ("rbac: neither", lambda me, o: me.rbac.has(o), errors.ValidationError),
    ("rbac: bad role", lambda me, o: me.rbac.has(o, role="boss"), errors.ValidationError),
    ("rbac: bad permission", lambda me, o: me.rbac.require(o, permission="DROP TABLE"), errors.ValidationError),
]


def test_bad_input_on_every_method(app: AppKit, stack: StackHandle) -> None:
    me, _ = user(app)
    org = me.orgs.create("Bad Input", slug())
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        before = conn.execute("select (select count(*) from appkit.organizations), "
                              "(select count(*) from appkit.invitations where org_id = %s)", (org.id,)).fetchone()
    wrong = []
    for label, call, expected in BAD_CALLS:
        try:
            call(me, org)
            wrong.append(f"{label}: no error")
        except errors.AppKitError as exc:
            if not isinstance(exc, expected):
                wrong.append(f"{label}: {type(exc).__name__} ({exc}) instead of {expected.__name__}")
    assert not wrong, "\n".join(wrong)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        after = conn.execute("select (select count(*) from appkit.organizations), "
                             "(select count(*) from appkit.invitations where org_id = %s)", (org.id,)).fetchone()
    assert after is not None and before is not None
    assert after[1] == before[1]  # no invitation was half-created
    # the caller's only organization is intact, plus the one "update: taken slug" made
    assert {o.name for o in me.orgs.mine()} == {"Bad Input", "t"}


def test_anon_and_mine_need_a_user(app: AppKit) -> None:
    with pytest.raises(errors.AuthError):
        app.orgs.mine()
    with pytest.raises(errors.AuthError):
        app.admin.orgs.mine()
    with pytest.raises(errors.AuthError):
        app.orgs.accept("a" * 64)
    with pytest.raises(errors.AppKitError):
        app.orgs.create("Anon", slug())


def test_async_client(stack: StackHandle, app: AppKit) -> None:
    session = signed_up(app)

    async def main() -> None:
        async with make_async_app(stack) as aapp:
            me = aapp.as_user(session)
            org = await me.orgs.create("Async Org", slug())
            assert [o.id for o in await me.orgs.mine()] == [org.id]
            assert await me.rbac.has(org, role="owner")
            inv = await me.orgs.invite(org, role="viewer")
            assert (await me.orgs.lookup_invitation(inv.token or "")).status == "pending"
            with pytest.raises(errors.Conflict):
                await me.orgs.leave(org)

    asyncio.run(main())
