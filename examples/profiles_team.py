"""Profiles: a profile appears at sign-up, its owner edits it, teammates (members of one
organization) read it, strangers do not.

    export SUPABASE_URL=http://127.0.0.1:54321 SUPABASE_ANON_KEY=... SUPABASE_SERVICE_ROLE_KEY=...
    python examples/profiles_team.py     # `appkit status -o dotenv` prints these variables
"""

from __future__ import annotations

import uuid

from appkit import AppKit, errors


def main() -> int:
    with AppKit.from_env() as app:
        password = "a-long-password-1"

        def email(name: str) -> str:
            return f"{name}-{uuid.uuid4().hex[:6]}@example.com"

        grace_session = app.auth.sign_up(email=email("grace"), password=password,
                                         data={"full_name": "Grace Hopper"})  # -> profiles.display_name
        grace = app.as_user(grace_session)
        print(f"new user's profile: {grace.profiles.me().display_name}")
        grace.profiles.update_me(display_name="Admiral Hopper", avatar_url="https://example.com/grace.png",
                                 metadata={"team": "compilers"})

        alan_session = app.auth.sign_up(email=email("alan"), password=password)
        stranger = app.as_user(app.auth.sign_up(email=email("eve"), password=password))
        org = grace.rpc("create_organization", {"name": "Navy Labs", "slug": f"navy-{uuid.uuid4().hex[:8]}"},
                        schema="appkit")
        app.admin.rpc("add_member", {"org_id": org["id"], "user_id": alan_session.user.id, "role": "member"},
                      schema="appkit")

        alan = app.as_user(alan_session)
        print(f"teammate sees: {alan.profiles.get(grace_session.user.id).display_name}")
        try:
            stranger.profiles.get(grace_session.user.id)
        except errors.NotFound:
            print("a stranger gets NotFound")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
