"""/rest/v1 driven by the official AsyncPostgrestClient: the same surface as the sync tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from postgrest import APIError, AsyncPostgrestClient, CountMethod

from tests.rest_support import SCHEMA_SQL, TABLES, client_headers, user_token, wait_for_tables
from tests.support import StackHandle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base(stack: StackHandle) -> str:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        if conn.execute("select to_regclass('public.rest_books')").fetchone() == (None,):
            conn.execute(SCHEMA_SQL)
    url = stack.api_url + "/rest/v1"
    wait_for_tables(url, stack.service_role_key, TABLES)
    return url


@pytest.fixture()
async def svc(base: str, stack: StackHandle) -> AsyncIterator[AsyncPostgrestClient]:
    async with AsyncPostgrestClient(base, headers=client_headers(stack.service_role_key)) as c:
        yield c


async def test_async_reads_embeds_counts(svc: AsyncPostgrestClient) -> None:
    r = await (svc.table("rest_books").select("id,title,author:rest_authors!author_id(name)", count=CountMethod.exact)
               .lte("id", 2).order("id").execute())
    assert r.count == 2
    assert r.data == [{"id": 1, "title": "Alpha", "author": {"name": "Ann"}},
                      {"id": 2, "title": "Beta", "author": {"name": "Ann"}}]
    one = await svc.table("rest_authors").select("name").eq("id", 1).single().execute()
    assert one.data == {"name": "Ann"}
    none = await svc.table("rest_authors").select("name").eq("id", -1).maybe_single().execute()
    assert none is None
    csv = await svc.table("rest_kinds").select("id,label").eq("id", 1).csv().execute()
    assert csv.data.splitlines() == ["id,label", "1,one"]
    r = await svc.table("rest_films").select("title,rest_actors(name)").eq("id", 2).execute()
    assert r.data == [{"title": "Ronin", "rest_actors": [{"name": "De Niro"}, {"name": "Reno"}]}]


async def test_async_writes_and_rpc(svc: AsyncPostgrestClient) -> None:
    r = await svc.table("rest_kinds").insert([{"id": 300, "label": "a"}, {"id": 301, "label": "b"}]).execute()
    assert [x["id"] for x in r.data] == [300, 301]
    r = await svc.table("rest_kinds").upsert({"id": 300, "label": "A"}).execute()
    assert r.data == [{"id": 300, "label": "A"}]
    r = await svc.table("rest_kinds").update({"label": "B"}).eq("id", 301).execute()
    assert r.data == [{"id": 301, "label": "B"}]
    r = await svc.table("rest_kinds").delete(count=CountMethod.exact).in_("id", [300, 301]).execute()
    assert r.count == 2
    assert (await svc.rpc("rest_add", {"a": 2, "b": 3}).execute()).data == 5
    r = await svc.rpc("rest_books_by", {"author": 1}).select("title").order("id").execute()
    assert r.data == [{"title": "Alpha"}, {"title": "Beta"}]
    with pytest.raises(APIError) as exc:
        await svc.table("rest_kinds").insert({"id": 1, "label": "dup"}).execute()
    assert exc.value.code == "23505"


async def test_async_rls_concurrent_users(base: str, stack: StackHandle) -> None:
    users = [str(uuid.uuid4()) for _ in range(4)]

    async def work(sub: str) -> list[str]:
        headers = client_headers(stack.anon_key, user_token(stack.jwt_secret, sub))
        async with AsyncPostgrestClient(base, headers=headers) as c:
            await c.table("rest_notes").insert([{"body": f"{sub}-{i}"} for i in range(3)]).execute()
            r = await c.table("rest_notes").select("body").order("id").execute()
            return [x["body"] for x in r.data]

    results = await asyncio.gather(*(work(u) for u in users))
    for sub, bodies in zip(users, results, strict=True):
        assert bodies == [f"{sub}-{i}" for i in range(3)]
    async with AsyncPostgrestClient(base, headers=client_headers(stack.anon_key)) as anon:
        with pytest.raises(APIError) as exc:
            await anon.table("rest_notes").select("*").execute()
        assert exc.value.code == "42501"
