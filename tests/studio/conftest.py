"""Studio fixtures: the console for the session's local stack, driven in-process with Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from appkit.studio import StudioTarget, create_app
from appkit.studio.security import CSRF_COOKIE
from tests.support import StackHandle

BASE_URL = "http://127.0.0.1:54323"


def target_for(stack: StackHandle) -> StudioTarget:
    return StudioTarget(api_url=stack.api_url, service_role_key=stack.service_role_key, db_url=stack.db_url,
                        anon_key=stack.anon_key, jwt_secret=stack.jwt_secret or None, workdir=stack.workdir,
                        local=stack.workdir is not None)


@pytest.fixture(scope="session")
def studio(stack: StackHandle) -> Iterator[TestClient]:
    """A client of the studio for the session stack (the same Host and Origin a browser on loopback sends)."""
    with TestClient(create_app(target_for(stack)), base_url=BASE_URL, follow_redirects=False) as client:
        client.get("/static/studio.css")  # receives the CSRF cookie
        yield client


def token(client: TestClient) -> str:
    """The CSRF token a page's forms carry (the cookie's value)."""
    value = client.cookies.get(CSRF_COOKIE)
    assert value, "no CSRF cookie yet"
    return value


def post(client: TestClient, path: str, data: dict[str, str] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    """POST a form with the CSRF token, as the page's own form does."""
    return client.post(path, data={"csrf_token": token(client), **(data or {})}, **kwargs)  # type: ignore[arg-type]
