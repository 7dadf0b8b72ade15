"""Manage users from a server with ``app.admin.users``: create, find, give a claim, ban, sign out, delete.

    eval "$(appkit status -o dotenv | sed 's/^/export /')"   # SUPABASE_URL, keys, JWT secret
    python examples/admin_users.py
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from appkit import AppKit, errors


def main() -> int:
    with AppKit.from_env() as app:
        users = app.admin.users
        email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
        ada = users.create(email=email, password="a-long-password-1", email_confirm=True,
                           user_metadata={"full_name": "Ada Lovelace"})
        print(f"created {ada.email}")
        page = users.list(filter=email)
        print(f"found {page.total} user(s) matching {email}")
        users.set_app_metadata(ada.id, {"plan": "pro"})  # in the user's next access token
        session = app.auth.sign_in(email=email, password="a-long-password-1")
        print(f"plan claim: {app.auth.verify(session.access_token).claims['app_metadata']['plan']}")
        users.ban(ada.id, timedelta(hours=1))
        try:
            app.auth.sign_in(email=email, password="a-long-password-1")
        except errors.AuthError as exc:
            print(f"banned: {exc.code}")
        users.unban(ada.id)
        users.sign_out(ada.id)  # every refresh token stops working
        link = users.generate_link("magiclink", email)
        print(f"magic link made: {link.action_link.startswith('http')}")
        users.delete(ada.id)
        try:
            users.get(ada.id)
        except errors.NotFound:
            print("deleted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
