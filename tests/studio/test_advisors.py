"""The Advisors page (findings with remediation links, filters, re-run) and the Migrations page (applied,
pending, drift as `appkit db status`); 400 for bad parameters; CSRF on re-run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from starlette.testclient import TestClient

from tests.studio.conftest import post
from tests.support import StackHandle

pytestmark = pytest.mark.integration


@pytest.fixture()
def open_table(stack: StackHandle) -> Iterator[str]:
    name = f"studio_lint_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f"create table public.{name} (id int primary key)")  # no RLS in an exposed schema
    yield name
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f"drop table public.{name}")


def test_advisors_show_a_table_without_rls(studio: TestClient, open_table: str) -> None:
    resp = post(studio, "/advisors/run")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/advisors?")
    page = studio.get("/advisors", params={"type": "security", "level": "error"})
    assert page.status_code == 200
    assert open_table in page.text and "RLS Disabled in Public" in page.text
    assert 'href="https://supabase.com/docs/guides/database/database-linter?lint=0013_rls_disabled_in_public"' \
        in page.text
    perf = studio.get("/advisors", params={"type": "performance"}).text
    assert "RLS Disabled in Public" not in perf
    overview = studio.get("/").text
    assert 'id="advisor-count"' in overview


def test_advisor_rerun_needs_the_csrf_token(studio: TestClient) -> None:
    assert studio.post("/advisors/run").status_code == 403


@pytest.mark.parametrize("query", [{"type": "nope"}, {"level": "fatal"}, {"level": ""} | {"type": "x" * 100}])
def test_bad_advisor_parameters_are_400(studio: TestClient, query: dict[str, str]) -> None:
    assert studio.get("/advisors", params=query).status_code == 400


def test_migrations_pending_applied_drift_and_remote_only(studio: TestClient, stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("needs the local project folder")
    folder = stack.workdir / "supabase" / "migrations"
    page = studio.get("/migrations")
    assert page.status_code == 200 and ">applied</span>" in page.text and ">drift</span>" not in page.text
    pending = folder / "29990101000000_studio_pending.sql"
    drifted = folder / "29990101000001_studio_drift.sql"
    pending.write_text("select 1;")
    drifted.write_text("select 1;")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into supabase_migrations.schema_migrations (version, name, statements) values"
                     " ('29990101000001', 'studio_drift', array['select 2']),"
                     " ('29990101000002', 'studio_remote', array['select 3'])")
    try:
        page = studio.get("/migrations").text
        rows = {line.split("</td><td>")[1]: line for line in page.split("<tr>") if "studio_" in line}
        assert ">pending</span>" in rows["studio_pending"]
        assert ">drift</span>" in rows["studio_drift"]
        assert ">remote only</span>" in rows["studio_remote"]
    finally:
        pending.unlink()
        drifted.unlink()
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("delete from supabase_migrations.schema_migrations where version like '2999%'")
    assert "studio_pending" not in studio.get("/migrations", params={"x": "%%"}).text
