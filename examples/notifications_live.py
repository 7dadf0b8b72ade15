"""Notifications: a user listens live while the server (service role) and an org admin notify them.

    export SUPABASE_URL=http://127.0.0.1:54321 SUPABASE_ANON_KEY=... SUPABASE_SERVICE_ROLE_KEY=...
    python examples/notifications_live.py    # `appkit status -o dotenv` prints these variables
"""

from __future__ import annotations

import asyncio
import uuid

from appkit import AsyncAppKit


async def main() -> int:
    async with AsyncAppKit.from_env() as app:
        password = "a-long-password-1"
        ada_session = await app.auth.sign_up(email=f"ada-{uuid.uuid4().hex[:6]}@example.com", password=password)
        bob_session = await app.auth.sign_up(email=f"bob-{uuid.uuid4().hex[:6]}@example.com", password=password)
        ada, bob = app.as_user(ada_session), app.as_user(bob_session)

        async with bob.notifications.stream() as feed:          # only bob's rows reach him (RLS)
            await app.admin.notifications.send(bob_session.user.id, title="Your export is ready",
                                               data={"url": "https://example.com/export.csv"}, kind="export")
            change = await asyncio.wait_for(feed.__anext__(), 10)
            assert change.new is not None
            print(f"live: {change.new.title}")

        # ada creates an org, adds bob, and notifies its members
        org = await ada.rpc("create_organization", {"name": "Acme", "slug": f"acme-{uuid.uuid4().hex[:8]}"},
                            schema="appkit")
        await app.admin.rpc("add_member", {"org_id": org["id"], "user_id": bob_session.user.id, "role": "member"},
                            schema="appkit")
        await ada.notifications.send_to_org(org["id"], title="Standup moved to 10:00", kind="calendar")

        print(f"unread: {await bob.notifications.unread_count()}")
        for n in await bob.notifications.list():
            print(f"  {n.kind:>8}  {n.title}")
        await bob.notifications.mark_all_read()
        print(f"after mark_all_read: {await bob.notifications.unread_count()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
