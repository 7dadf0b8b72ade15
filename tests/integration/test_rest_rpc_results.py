"""RPC results PostgREST gives and the local REST got wrong, through supabase-py's ``.rpc()``:
a ``stable``/``immutable`` function returning ``void`` runs (its RAISE and its ``response.*``
settings take effect) on POST and GET, and a function returning a standalone composite type
(``create type ... as (...)``) answers the object, not ``{}``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from postgrest import APIError
from supabase import Client, create_client

from tests.support import StackHandle

pytestmark = pytest.mark.integration

SQL = """
create function public.rpc_void_check(n int) returns void language plpgsql stable as $$
begin
  if n < 0 then raise exception 'negative: %', n; end if;
  perform set_config('response.headers', '[{"X-Checked": "yes"}]', true);
end $$;
create function public.rpc_void_immutable(n int) returns void language plpgsql immutable as $$
begin
  if n < 0 then raise exception 'immutable saw %', n; end if;
end $$;
create function public.rpc_void_ran() returns void language plpgsql stable as $$
begin raise exception 'the function ran'; end $$;
create function public.rpc_void_status() returns void language plpgsql stable as $$
begin perform set_config('response.status', '202', true); end $$;
create type public.rpc_pair as (a int, b text);
create function public.rpc_make_pair(n int) returns public.rpc_pair language sql stable as $$
  select n, 'x' || n $$;
create function public.rpc_no_pair() returns public.rpc_pair language sql stable as $$
  select null::int, null::text where false $$;
create function public.rpc_pairs(n int) returns setof public.rpc_pair language sql stable as $$
  select i, 'x' || i from generate_series(1, n) i $$;
"""
DROP = """
drop function if exists public.rpc_void_check(int), public.rpc_void_immutable(int), public.rpc_void_ran(),
  public.rpc_void_status(), public.rpc_make_pair(int), public.rpc_no_pair(), public.rpc_pairs(int);
drop type if exists public.rpc_pair;
"""


@pytest.fixture(scope="module")
def client(stack: StackHandle) -> Iterator[Client]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(DROP)
        conn.execute(SQL)
        conn.execute("notify pgrst, 'reload schema'")
    key = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    # a function the cache misses but the catalog holds is reloaded for at once (no NOTIFY needed)
    r = httpx.get(stack.api_url + "/rest/v1/rpc/rpc_make_pair", params={"n": "1"}, headers=key, timeout=60)
    assert r.status_code == 200, r.text
    yield create_client(stack.api_url, stack.service_role_key)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(DROP)


@pytest.mark.parametrize("get", [False, True], ids=["POST", "GET"])
def test_a_stable_void_function_runs(client: Client, get: bool) -> None:
    with pytest.raises(APIError) as info:
        client.rpc("rpc_void_check", {"n": -1}, get=get).execute()
    assert info.value.message == "negative: -1"
    with pytest.raises(APIError) as info:
        client.rpc("rpc_void_ran", {}, get=get).execute()
    assert info.value.message == "the function ran"
    assert client.rpc("rpc_void_check", {"n": 1}, get=get).execute().data in (None, "", [])


@pytest.mark.parametrize("get", [False, True], ids=["POST", "GET"])
def test_an_immutable_void_function_runs(client: Client, get: bool) -> None:
    with pytest.raises(APIError) as info:
        client.rpc("rpc_void_immutable", {"n": -7}, get=get).execute()
    assert info.value.message == "immutable saw -7"
    client.rpc("rpc_void_immutable", {"n": 7}, get=get).execute()


def test_a_stable_void_function_sets_response_headers_and_status(stack: StackHandle) -> None:
    key = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    with httpx.Client(base_url=stack.api_url + "/rest/v1", headers=key, timeout=30) as http:
        for r in (http.post("/rpc/rpc_void_check", json={"n": 3}), http.get("/rpc/rpc_void_check?n=3")):
            assert r.status_code == 204 and r.headers.get("x-checked") == "yes", (r.status_code, r.headers)
        for r in (http.post("/rpc/rpc_void_status", json={}), http.get("/rpc/rpc_void_status")):
            assert r.status_code == 202, r.text


@pytest.mark.parametrize("get", [False, True], ids=["POST", "GET"])
def test_a_standalone_composite_result_is_the_object(client: Client, get: bool) -> None:
    assert client.rpc("rpc_make_pair", {"n": 2}, get=get).execute().data == {"a": 2, "b": "x2"}
    assert client.rpc("rpc_make_pair", {"n": 2}, get=get).select("b").execute().data == {"b": "x2"}
    # a NULL composite: PostgREST answers its attributes as nulls (PostgREST issue #3694)
    assert client.rpc("rpc_no_pair", {}, get=get).execute().data == {"a": None, "b": None}
    rows = client.rpc("rpc_pairs", {"n": 3}, get=get).gt("a", 1).execute().data
    assert rows == [{"a": 2, "b": "x2"}, {"a": 3, "b": "x3"}]
