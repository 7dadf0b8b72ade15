"""The issue's browser scenarios on the Tables and Users pages, in a real Chromium: two users sign up and
an RLS-protected table viewed as each shows only their rows; a user banned from the Users page cannot sign
in. Also the screenshots of the Overview, Tables, Users, Advisors, Migrations and Mail pages."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appkit import AppKit, Model, errors
from tests.studio.browser.test_pages_in_browser import _by_css, _submit
from tests.support import StackHandle

pytestmark = pytest.mark.integration
PASSWORD = "studio-browser-password-2"


class StudioNote(Model, table="studio_browser_notes"):
    id: int | None = None
    owner: str | None = None
    body: str


@pytest.fixture(scope="module")
def app(stack: StackHandle) -> Iterator[AppKit]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("""
            create table if not exists public.studio_browser_notes (
                id bigint generated always as identity primary key,
                owner uuid not null default auth.uid() references auth.users (id) on delete cascade,
                body text not null);
            alter table public.studio_browser_notes enable row level security;
            drop policy if exists own_notes on public.studio_browser_notes;
            create policy own_notes on public.studio_browser_notes for all to authenticated
                using (owner = (select auth.uid())) with check (owner = (select auth.uid()));
            grant select, insert, update, delete on public.studio_browser_notes to authenticated;
            notify pgrst, 'reload schema';
        """)
    client = AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key)
    yield client
    client.close()


def _insert(me: AppKit, body: str) -> None:
    """Insert through REST as the user (retried while the API reloads its schema for the new table)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            me.table(StudioNote).insert(StudioNote(body=body))
            return
        except errors.AppKitError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _grid_text(browser: Any) -> str:
    return str(_by_css(browser, "#grid tbody").text)


def test_two_users_sign_up_and_each_sees_only_their_rows(
        browser: Any, studio_url: str, app: AppKit, shot: Callable[[str], Path]) -> None:
    tag = uuid.uuid4().hex[:8]
    people = {}
    for name in ("ada", "bob"):
        session = app.auth.sign_up(email=f"{name}-{tag}@example.com", password=PASSWORD)
        me = app.as_user(session)
        for i in range(2):
            _insert(me, f"{name}'s note {i} {tag}")
        people[name] = str(session.user.id)
    browser.get(f"{studio_url}/tables/public/studio_browser_notes")
    everything = _grid_text(browser)
    assert all(f"{n}'s note {i} {tag}" in everything for n in people for i in range(2))
    for name, user_id in people.items():
        field = _by_css(browser, "#view-as input[name=as]")
        field.clear()
        field.send_keys(user_id)
        _submit(browser, "#view-as")
        assert f"as={user_id}" in browser.current_url
        visible = _grid_text(browser)
        other = "bob" if name == "ada" else "ada"
        assert f"{name}'s note 0 {tag}" in visible and f"{name}'s note 1 {tag}" in visible
        assert f"{other}'s note" not in visible, visible
        if name == "ada":
            shot("tables-view-as")
    browser.get(f"{studio_url}/tables/public/studio_browser_notes?as=anon")
    assert tag not in _grid_text(browser)
    browser.get(f"{studio_url}/tables")
    shot("tables")


def test_a_user_banned_from_the_users_page_cannot_sign_in(
        browser: Any, studio_url: str, app: AppKit, shot: Callable[[str], Path]) -> None:
    email = f"banned-{uuid.uuid4().hex[:8]}@example.com"
    user_id = str(app.admin.users.create(email=email, password=PASSWORD, email_confirm=True).id)
    app.auth.sign_in(email=email, password=PASSWORD)  # signs in before the ban
    browser.get(f"{studio_url}/users?q={email}")
    assert email in _by_css(browser, "main").text
    shot("users")
    browser.get(f"{studio_url}/users/{user_id}")
    _submit(browser, "#ban-form")  # its confirm dialog is accepted (the browser fixture's prompt behaviour)
    assert "banned until" in _by_css(browser, "main").text
    shot("users-user")
    with pytest.raises(errors.AuthError):
        app.auth.sign_in(email=email, password=PASSWORD)


@pytest.mark.parametrize("name, path", [("overview", "/"), ("advisors", "/advisors"),
                                        ("migrations", "/migrations"), ("mail", "/mail")])
def test_page_screenshots(browser: Any, studio_url: str, app: AppKit, name: str, path: str,
                          shot: Callable[[str], Path]) -> None:
    if name == "mail":  # something captured to show
        app.admin.users.invite(f"invited-{uuid.uuid4().hex[:8]}@example.com")
    browser.get(studio_url + path)
    assert "appkit studio" in browser.title and "Not found" not in browser.title, browser.title
    assert not browser.find_elements("css selector", "#error-message")
    shot(name)
