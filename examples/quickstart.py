"""A tour of the sync SDK: sign up two users, show that RLS keeps their notes apart,
page through rows, count with a typed filter, and verify a token.

    export SUPABASE_URL=http://127.0.0.1:54321 SUPABASE_ANON_KEY=... SUPABASE_SERVICE_ROLE_KEY=...
    export SUPABASE_JWT_SECRET=...        # optional: verify() uses the JWKS otherwise
    python examples/quickstart.py         # the example_notes table: see examples/fastapi_notes.py SCHEMA
"""

from __future__ import annotations

import uuid
from uuid import UUID

from appkit import AppKit, Model, col, errors


class Note(Model, table="example_notes"):
    id: int | None = None
    owner: UUID | None = None
    body: str
    done: bool = False


def main() -> int:
    with AppKit.from_env() as app:
        alice = app.auth.sign_up(email=f"alice-{uuid.uuid4().hex[:6]}@example.com", password="a-long-password-1")
        bob = app.auth.sign_up(email=f"bob-{uuid.uuid4().hex[:6]}@example.com", password="a-long-password-2")
        a_notes = app.as_user(alice).table(Note)
        b_notes = app.as_user(bob).table(Note)

        first = a_notes.insert(Note(body="alice's first note"))
        print(f"alice inserted note {first.id} (owner filled in by the server: {first.owner})")
        try:
            b_notes.get(first.id)
        except errors.NotFound:
            print("bob cannot see it: NotFound")

        for i in range(5):
            a_notes.insert(Note(body=f"note {i}", done=i % 2 == 0))
        page = a_notes.page(limit=2)
        pages = 1
        while page.next_cursor:
            page = a_notes.page(limit=2, after=page.next_cursor)
            pages += 1
        print(f"alice has {a_notes.count()} notes, {len(a_notes.list(col(Note.done).eq(True)))} done, "
              f"{pages} pages of 2")

        principal = app.auth.verify(alice.access_token)
        print(f"verified token: user {principal.user_id}, role {principal.role}, {principal.aal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
