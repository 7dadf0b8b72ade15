"""Session fixtures. Integration tests get one local stack for the whole session,
started on free ports in a temp dir. Set APPKIT_TEST_SUPABASE_URL (with
APPKIT_TEST_ANON_KEY, APPKIT_TEST_SERVICE_ROLE_KEY, APPKIT_TEST_DB_URL and
APPKIT_TEST_JWT_SECRET) to run the same suite against a real Supabase project."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from appkit.db.bundled import copy_missing
from tests.support import StackHandle, start_stack, write_project


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    url = os.environ.get("APPKIT_TEST_SUPABASE_URL")
    if url:
        yield StackHandle(
            api_url=url.rstrip("/"),
            anon_key=os.environ["APPKIT_TEST_ANON_KEY"],
            service_role_key=os.environ["APPKIT_TEST_SERVICE_ROLE_KEY"],
            db_url=os.environ["APPKIT_TEST_DB_URL"],
            jwt_secret=os.environ.get("APPKIT_TEST_JWT_SECRET", ""),
        )
        return
    workdir = tmp_path_factory.mktemp("stack")
    write_project(workdir)
    copy_missing(workdir / "supabase" / "migrations")  # appkit's own schema, as `appkit init` ships it
    handle = start_stack(workdir)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture()
def db(stack: StackHandle) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser (postgres) connection to the stack's database, autocommit."""
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        yield conn
