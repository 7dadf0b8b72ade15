"""Helpers for the server-side tests of the Organizations, Storage, Jobs and Audit pages: a studio app on the
session stack behind Starlette's TestClient, the CSRF token of a page, and a 5xx-free check of bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from starlette.testclient import TestClient

from appkit.studio.app import create_app
from appkit.studio.target import StudioTarget
from tests.support import StackHandle

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def studio_client(stack: StackHandle) -> Iterator[TestClient]:
    """A client of the studio for ``stack``, on a loopback host (the studio refuses any other)."""
    target = StudioTarget(api_url=stack.api_url, service_role_key=stack.service_role_key, db_url=stack.db_url,
                          anon_key=stack.anon_key, jwt_secret=stack.jwt_secret or None,
                          workdir=stack.workdir, local=stack.workdir is not None)
    with TestClient(create_app(target), base_url="http://127.0.0.1:54323", follow_redirects=False) as client:
        yield client


def csrf(client: TestClient, path: str = "/jobs") -> str:
    """The CSRF token a page's forms carry (the client keeps the matching cookie)."""
    page = client.get(path)
    assert page.status_code == 200, page.text[:500]
    match = _TOKEN.search(page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def flash(response: httpx.Response) -> str:
    """The one-line message a Post/Redirect/Get redirect carries."""
    from urllib.parse import parse_qs, urlsplit

    assert response.status_code == 303, (response.status_code, response.text[:500])
    return parse_qs(urlsplit(response.headers["location"]).query).get("flash", [""])[0]


def assert_no_5xx(client: TestClient, paths: list[str]) -> dict[str, int]:
    """GET every path; none may answer 5xx. Returns path -> status (for exact assertions)."""
    statuses = {p: client.get(p).status_code for p in paths}
    bad = {p: s for p, s in statuses.items() if s >= 500}
    assert not bad, f"5xx on bad input: {bad}"
    return statuses
