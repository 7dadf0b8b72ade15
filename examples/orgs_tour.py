"""Organizations in a few calls: create, invite, preview and accept, roles, checks, transfer.

    export SUPABASE_URL=http://127.0.0.1:54321 SUPABASE_ANON_KEY=... SUPABASE_SERVICE_ROLE_KEY=...
    python examples/orgs_tour.py     # needs appkit's schema (appkit init / appkit schema add)
"""

from __future__ import annotations

import uuid

from appkit import AppKit, errors
from appkit.orgs import Role


def main() -> int:
    with AppKit.from_env() as app:
        tag = uuid.uuid4().hex[:6]
        alice_session = app.auth.sign_up(email=f"alice-{tag}@example.com", password="a-long-password-1")
        bob_session = app.auth.sign_up(email=f"bob-{tag}@example.com", password="a-long-password-2")
        alice, bob = app.as_user(alice_session), app.as_user(bob_session)
        assert bob_session.user is not None
        bob_id = bob_session.user.id

        acme = alice.orgs.create("Acme", f"acme-{tag}", metadata={"plan": "free"})  # alice is the owner
        invite = alice.orgs.invite(acme, role=Role.member, email=bob_session.user.email)
        print(f"invited to {bob.orgs.lookup_invitation(invite.token or '').org_name} as {invite.role}")
        bob.orgs.accept(invite.token or "")

        try:
            bob.orgs.accept(invite.token or "")
        except errors.Conflict as exc:
            print(f"second accept: Conflict ({exc})")
        try:
            bob.orgs.update(acme, name="Bob's now")
        except errors.PermissionDenied:
            print("bob (member) cannot rename: PermissionDenied")

        alice.orgs.set_role(acme, bob_id, Role.admin)
        bob.rbac.require(acme, permission="members.manage")
        print("members:", ", ".join(f"{m.email}={m.role}" for m in alice.orgs.members(acme)))

        try:
            alice.orgs.leave(acme)
        except errors.Conflict:
            print("alice is the last owner: transfer first")
            alice.orgs.transfer(acme, bob_id)
            alice.orgs.leave(acme)
        print("bob's organizations:", [(o.slug.split("-")[0], o.role) for o in bob.orgs.mine()])
        bob.orgs.delete(acme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
