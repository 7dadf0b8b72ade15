"""Large reads (``[api] max_rows`` above 5,000): the LIMIT 5001 probe, then a server-side cursor
streamed in batches. Runs the /rest/v1 app in-process on the session stack's database with a
larger max_rows, driven by the official async client."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from postgrest import AsyncPostgrestClient

from appkit.local.config import ProjectConfig
from appkit.local.context import StackContext
from appkit.local.keys import JWTKeys
from appkit.local.rest import RestService
from appkit.local.rest.reads import STREAM_BATCH, STREAM_ROWS
from tests.rest_support import client_headers
from tests.support import StackHandle

pytestmark = pytest.mark.integration

ROWS = STREAM_ROWS + 2 * STREAM_BATCH + 17


@pytest.fixture(scope="module")
def big_table(stack: StackHandle) -> str:
    if os.environ.get("APPKIT_TEST_SUPABASE_URL"):
        pytest.skip("runs the service in-process against the embedded database")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("drop table if exists public.rest_big")
        conn.execute("create table public.rest_big (id int primary key, label text, note text)")
        conn.execute(f"insert into public.rest_big select g, 'row ' || g, case when g % 2 = 0 then null "
                     f"else 'odd' end from generate_series(1, {ROWS}) g")
    return "rest_big"


@pytest.fixture()
async def app(stack: StackHandle, big_table: str, tmp_path: Path) -> AsyncIterator[RestService]:
    cfg = ProjectConfig()
    cfg.api.max_rows = 100_000
    ctx = StackContext(project_dir=tmp_path, config=cfg, keys=JWTKeys(secret=stack.jwt_secret),
                       db_url=stack.db_url, data_dir=tmp_path, api_url="http://rest.test", embedded=True)
    rest = RestService(ctx)
    await rest.startup()
    try:
        yield rest
    finally:
        await rest.shutdown()
        await ctx.aclose()


def _client(app: RestService, stack: StackHandle) -> AsyncPostgrestClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rest.test")
    return AsyncPostgrestClient("http://rest.test", headers=client_headers(stack.service_role_key), http_client=http)


async def test_large_read_is_streamed_complete(app: RestService, stack: StackHandle) -> None:
    async with _client(app, stack) as c:
        r = await c.table("rest_big").select("id,label,note").order("id").execute()
        assert len(r.data) == ROWS
        assert r.data[0] == {"id": 1, "label": "row 1", "note": "odd"}
        assert r.data[-1]["id"] == ROWS
        assert [x["id"] for x in r.data] == list(range(1, ROWS + 1))
        # strip_nulls applies per row in the stream too
        r = await c.table("rest_big").select("id,note").lte("id", STREAM_ROWS + 10).order("id").strip_nulls().execute()
        assert r.data[1] == {"id": 2} and r.data[0] == {"id": 1, "note": "odd"}
        # below the threshold the ordinary path answers
        r = await c.table("rest_big").select("id").lte("id", 10).execute()
        assert len(r.data) == 10


async def test_large_read_headers_and_head(app: RestService, stack: StackHandle) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rest.test",
                                 headers=client_headers(stack.service_role_key)) as h:
        r = await h.get("/rest_big", params={"select": "id", "order": "id.desc", "offset": "5"})
        assert r.status_code == 200
        assert r.headers["content-range"] == f"5-{ROWS - 1}/*"
        assert b"}, \n" not in r.content  # the cursor path's compact layout, not json_agg's
        data = json.loads(r.content)
        assert data[0] == {"id": ROWS - 5} and len(data) == ROWS - 5
        r = await h.head("/rest_big", params={"select": "id"})
        assert r.status_code == 200 and r.content == b""
        # errors before streaming starts keep PostgREST's shape
        r = await h.get("/rest_big", params={"select": "id", "label": "gt.1", "id": "eq.x"})
        assert r.status_code == 400 and r.json()["code"] == "22P02"
