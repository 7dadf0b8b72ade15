"""REST after the database ended its sessions (``appkit db reset``, an admin's
pg_terminate_backend): the schema listener's and the pooled connections are gone, and a
``NOTIFY pgrst`` sent before the listener is back is lost (as with PostgREST). The next
request must still answer at once, with the new schema: nothing waits for a timeout, a
write is not refused for a dead pooled connection, and a miss in the schema cache waits
for the listener's reload on reconnect instead of answering 404."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from appkit.local.rest.schema import is_stale, load_schema
from tests.rest_support import wait_for_tables
from tests.support import StackHandle

TERMINATE = (
    "select count(pg_terminate_backend(pid, 5000)) from pg_stat_activity"
    " where usename = 'authenticator' and pid <> pg_backend_pid()"
)


def test_first_request_after_terminated_backends_sees_the_new_schema(stack: StackHandle) -> None:
    warm, table = (f"{name}_{uuid.uuid4().hex[:8]}" for name in ("before_kill", "after_kill"))
    service = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    with httpx.Client(base_url=stack.api_url + "/rest/v1", headers=service, timeout=60) as http:
        try:
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                conn.execute(f"create table public.{warm} (id int)")  # type: ignore[arg-type]
            wait_for_tables(stack.api_url + "/rest/v1", stack.service_role_key, [warm], db_url=stack.db_url)
            # several reads at once, so that REST holds several pooled connections
            with ThreadPoolExecutor(6) as pool:
                assert all(r.status_code == 200 for r in pool.map(lambda _: http.get(f"/{warm}"), range(24)))
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                killed = conn.execute(TERMINATE).fetchone()
                assert killed is not None and killed[0] >= 2  # the listener and pooled connections
                conn.execute(f"create table public.{table} (id int primary key, v text)")  # type: ignore[arg-type]
                conn.execute("notify pgrst, 'reload schema'")  # most likely lost: nobody listens
            started = time.perf_counter()
            r = http.post(f"/{table}", json={"id": 1, "v": "a"}, headers={"Prefer": "return=representation"})
            first = time.perf_counter() - started
            assert r.status_code == 201, r.text  # first try: no 404, no 503 for a dead connection
            assert r.json() == [{"id": 1, "v": "a"}]
            r = http.get(f"/{table}", params={"select": "v"})
            assert r.status_code == 200 and r.json() == [{"v": "a"}]
            print(f"first request after the termination answered in {first * 1000:.0f} ms")
        finally:
            with psycopg.connect(stack.db_url, autocommit=True) as conn:
                conn.execute(f"drop table if exists public.{table}, public.{warm}")  # type: ignore[arg-type]


def test_a_missing_table_still_answers_404_promptly(stack: StackHandle) -> None:
    """With the listener idle and nothing pending, a miss is answered at once (no wait)."""
    service = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    with httpx.Client(base_url=stack.api_url + "/rest/v1", headers=service, timeout=60) as http:
        for _ in range(50):  # until the listener is back from other tests' terminations
            if http.get("/").status_code == 200:
                break
        r = http.get("/no_such_table_here")
        assert r.status_code == 404 and r.json()["code"] == "PGRST205"


async def test_stale_means_the_catalog_differs_from_what_the_cache_read(stack: StackHandle) -> None:
    """A name the cache read but cannot serve (a trigger function) is not stale: calling it
    again and again must not reload the cache each time; a table or function created after
    the load is."""
    schemas = ["public"]
    suffix = uuid.uuid4().hex[:8]
    async with await psycopg.AsyncConnection.connect(stack.db_url, autocommit=True) as conn:
        try:
            await conn.execute(f"create function public.trig_{suffix}() returns trigger language plpgsql"  # type: ignore[arg-type]
                               " as $$ begin return new; end $$")
            cache = await load_schema(conn, schemas, 1)
            assert ("public", f"trig_{suffix}") not in cache.functions
            assert not await is_stale(conn, cache, "function", "public", f"trig_{suffix}")
            assert not await is_stale(conn, cache, "table", "public", f"nothing_{suffix}")
            assert not await is_stale(conn, cache, "function", "public", f"nothing_{suffix}")
            await conn.execute(f"create table public.new_{suffix} (id int)")  # type: ignore[arg-type]
            await conn.execute(f"create function public.fn_{suffix}() returns int language sql"  # type: ignore[arg-type]
                               " as $$ select 1 $$")
            assert await is_stale(conn, cache, "table", "public", f"new_{suffix}")
            assert await is_stale(conn, cache, "function", "public", f"fn_{suffix}")
            fresh = await load_schema(conn, schemas, 2)
            assert not await is_stale(conn, fresh, "table", "public", f"new_{suffix}")
            assert not await is_stale(conn, fresh, "function", "public", f"fn_{suffix}")
        finally:
            await conn.execute(f"drop table if exists public.new_{suffix}; "  # type: ignore[arg-type]
                               f"drop function if exists public.fn_{suffix}(), public.trig_{suffix}()")
