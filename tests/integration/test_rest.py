"""/rest/v1 driven by the official postgrest client (sync), against the local stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from postgrest import APIError, CountMethod, SyncPostgrestClient
from postgrest.types import ReturnMethod

from tests.rest_support import SCHEMA_SQL, TABLES, client_headers, user_token, wait_for_tables
from tests.support import StackHandle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rest_db(stack: StackHandle) -> Iterator[str]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        conn.execute("notify pgrst, 'reload schema'")
    base = stack.api_url + "/rest/v1"
    wait_for_tables(base, stack.service_role_key, TABLES, timeout=60, db_url=stack.db_url)
    yield base


@pytest.fixture(scope="module")
def svc(rest_db: str, stack: StackHandle) -> Iterator[SyncPostgrestClient]:
    with SyncPostgrestClient(rest_db, headers=client_headers(stack.service_role_key)) as c:
        yield c


@pytest.fixture(scope="module")
def anon(rest_db: str, stack: StackHandle) -> Iterator[SyncPostgrestClient]:
    with SyncPostgrestClient(rest_db, headers=client_headers(stack.anon_key)) as c:
        yield c


def user_client(base: str, stack: StackHandle, sub: str) -> SyncPostgrestClient:
    return SyncPostgrestClient(base, headers=client_headers(stack.anon_key, user_token(stack.jwt_secret, sub)))


# -- reads ------------------------------------------------------------------------------------------

def test_select_columns_alias_cast_json(svc: SyncPostgrestClient) -> None:
    r = svc.table("rest_books").select("id,heading:title,pages::text,lang:meta->>lang,meta->n").order("id").execute()
    assert r.data[0] == {"id": 1, "heading": "Alpha", "pages": "100", "lang": "en", "n": 1}
    assert r.data[2]["pages"] is None


def test_select_star_and_types(svc: SyncPostgrestClient) -> None:
    row = svc.table("rest_books").select("*").eq("id", 1).single().execute().data
    assert row["tags"] == ["a", "b"]
    assert row["meta"] == {"lang": "en", "n": 1}
    assert row["price"] == 9.99
    assert row["published"] == "2020-01-01"
    assert row["span"] == "[1,10)"


@pytest.mark.parametrize(("build", "expected"), [
    (lambda q: q.eq("title", "Beta"), [2]),
    (lambda q: q.neq("title", "Beta"), [1, 3, 4]),
    (lambda q: q.gt("pages", 100), [2]),
    (lambda q: q.gte("pages", 100), [1, 2]),
    (lambda q: q.lt("pages", 100), [4]),
    (lambda q: q.lte("pages", 100), [1, 4]),
    (lambda q: q.like("title", "%ta%"), [2, 4]),
    (lambda q: q.ilike("title", "%ALPHA%"), [1]),
    (lambda q: q.like_any_of("title", "Al*,Ga*"), [1, 3]),
    (lambda q: q.like_all_of("title", "%a%,%e%"), [2, 4]),
    (lambda q: q.ilike_any_of("title", "al*,be*"), [1, 2]),
    (lambda q: q.ilike_all_of("title", "*L*,*P*"), [1]),
    (lambda q: q.is_("pages", None), [3]),
    (lambda q: q.not_.is_("pages", None), [1, 2, 4]),
    (lambda q: q.is_("editor_id", "null"), [2, 4]),
    (lambda q: q.in_("title", ["Alpha", "Gamma", 'Delta, the "quoted"']), [1, 3, 4]),
    (lambda q: q.not_.in_("id", [1, 2]), [3, 4]),
    (lambda q: q.contains("tags", ["b"]), [1, 2]),
    (lambda q: q.contained_by("tags", ["a", "b", "c"]), [1, 2, 3, 4]),
    (lambda q: q.overlaps("tags", ["a", "c"]), [1, 4]),
    (lambda q: q.contains("meta", {"lang": "en"}), [1, 3]),
    (lambda q: q.fts("body", "quick"), [1, 3]),
    (lambda q: q.plfts("body", "quick fox"), [1]),
    (lambda q: q.phfts("body", "quick brown"), [1]),
    (lambda q: q.wfts("body", "quick -fox"), [3]),
    (lambda q: q.text_search("body", "sleep", {"config": "english"}), [2]),
    (lambda q: q.range_lt("span", (20, 30)), [1, 2]),
    (lambda q: q.range_gt("span", (2, 4)), [2, 4]),
    (lambda q: q.range_gte("span", (2, 4)), [2, 4]),
    (lambda q: q.range_lte("span", (1, 20)), [1, 2]),
    (lambda q: q.range_adjacent("span", (20, 30)), [4]),
    (lambda q: q.overlaps("span", "[8,9)"), [1, 2]),
    (lambda q: q.match({"author_id": 1, "pages": 200}), [2]),
    (lambda q: q.filter("title", "match", "^[AB]"), [1, 2]),
    (lambda q: q.filter("title", "imatch", "^[ab]"), [1, 2]),
    (lambda q: q.filter("pages", "isdistinct", "100"), [2, 3, 4]),
    (lambda q: q.filter("id", "eq(any)", "{1,3}"), [1, 3]),
    (lambda q: q.filter("id", "gt(all)", "{1,2}"), [3, 4]),
    (lambda q: q.or_("pages.gt.150,pages.is.null"), [2, 3]),
    (lambda q: q.or_("and(author_id.eq.1,pages.lt.150),title.eq.Gamma"), [1, 3]),
    (lambda q: q.not_.or_("pages.gt.150,pages.is.null"), [1, 4]),
    (lambda q: q.filter("meta->>lang", "eq", "no"), [2]),
    (lambda q: q.filter("meta->n", "gt", "1"), [2, 3]),
    (lambda q: q.filter("published", "gte", "2020-01-01"), [1, 2]),
    (lambda q: q.or_('title.eq."Delta, the \\"quoted\\""'), [4]),
])
def test_filter_operators(svc: SyncPostgrestClient, build: Any, expected: list[int]) -> None:
    r = build(svc.table("rest_books").select("id")).order("id").execute()
    assert [row["id"] for row in r.data] == expected


def test_same_shape_different_values(svc: SyncPostgrestClient) -> None:
    # reads are planned once per shape; each request must still bind its own values
    for i, title in [(1, "Alpha"), (2, "Beta"), (3, "Gamma"), (1, "Alpha")]:
        r = svc.table("rest_books").select("title").eq("id", i).neq("title", "x").execute()
        assert r.data == [{"title": title}]
    assert svc.table("rest_books").select("id").eq("title", "pgrst0").execute().data == []
    with pytest.raises(APIError) as exc:
        svc.table("rest_books").select("id").eq("title", "\x00pgrst0\x00").execute()
    assert exc.value.code == "22021"
    assert svc.table("rest_books").select("id").eq("title", "Beta").eq("title", "Beta").execute().data == [{"id": 2}]


def test_order_limit_offset_range(svc: SyncPostgrestClient) -> None:
    r = svc.table("rest_books").select("id").order("pages", desc=True, nullsfirst=True).execute()
    assert [x["id"] for x in r.data] == [3, 2, 1, 4]
    r = svc.table("rest_books").select("id").order("pages", nullsfirst=False).execute()
    assert [x["id"] for x in r.data] == [4, 1, 2, 3]
    r = svc.table("rest_books").select("id").order("author_id").order("id", desc=True).execute()
    assert [x["id"] for x in r.data] == [2, 1, 3, 4]
    r = svc.table("rest_books").select("id").order("id").limit(2).offset(1).execute()
    assert [x["id"] for x in r.data] == [2, 3]
    r = svc.table("rest_books").select("id", count=CountMethod.exact).order("id").range(1, 2).execute()
    assert [x["id"] for x in r.data] == [2, 3]
    assert r.count == 4


def test_counts_and_content_range(svc: SyncPostgrestClient, rest_db: str, stack: StackHandle) -> None:
    r = svc.table("rest_books").select("id", count=CountMethod.exact).gt("id", 1).execute()
    assert r.count == 3
    r = svc.table("rest_books").select("id", count=CountMethod.planned).execute()
    assert isinstance(r.count, int)
    r = svc.table("rest_books").select("id", count=CountMethod.estimated).execute()
    assert r.count == 4
    r = svc.table("rest_books").select("*", count=CountMethod.exact, head=True).execute()
    assert r.count == 4
    h = {**client_headers(stack.service_role_key), "Prefer": "count=exact", "Range": "0-1"}
    resp = httpx.get(f"{rest_db}/rest_books?select=id&order=id", headers=h)
    assert resp.status_code == 206
    assert resp.headers["content-range"] == "0-1/4"
    resp = httpx.get(f"{rest_db}/rest_books?select=id&offset=10", headers=h)
    assert resp.status_code == 416
    assert resp.json()["code"] == "PGRST103"
    resp = httpx.get(f"{rest_db}/rest_books?select=id&id=eq.0", headers=client_headers(stack.service_role_key))
    assert resp.headers["content-range"] == "*/*"
    assert resp.json() == []


def test_single_maybe_single_csv(svc: SyncPostgrestClient) -> None:
    assert svc.table("rest_authors").select("name").eq("id", 2).single().execute().data == {"name": "Bob"}
    with pytest.raises(APIError) as exc:
        svc.table("rest_authors").select("name").single().execute()
    assert exc.value.code == "PGRST116"
    with pytest.raises(APIError) as exc:
        svc.table("rest_authors").select("name").eq("id", 99).single().execute()
    assert exc.value.code == "PGRST116"
    assert svc.table("rest_authors").select("name").eq("id", 99).maybe_single().execute() is None
    csv = svc.table("rest_authors").select("id,name,country").order("id").csv().execute().data
    assert csv.splitlines() == ["id,name,country", "1,Ann,NO", "2,Bob,SE", "3,Cid,"]


def test_strip_nulls(svc: SyncPostgrestClient) -> None:
    r = svc.table("rest_authors").select("name,country").eq("id", 3).strip_nulls().execute()
    assert r.data == [{"name": "Cid"}]


def test_views_are_readable(svc: SyncPostgrestClient) -> None:
    r = svc.table("rest_book_view").select("title,author").eq("id", 3).execute()
    assert r.data == [{"title": "Gamma", "author": "Bob"}]


def test_max_rows_caps_results(svc: SyncPostgrestClient, stack: StackHandle) -> None:
    # the test config sets max_rows = 1000: a larger limit is capped
    r = svc.rpc("rest_table_fn", {"lim": 1500}).select("n").execute()
    assert len(r.data) == 1000


# -- embedding ---------------------------------------------------------------------------------------

def test_embed_many_to_one_with_hint_and_alias(svc: SyncPostgrestClient) -> None:
    r = svc.table("rest_books").select(
        "title,author:rest_authors!author_id(name),editor:rest_authors!editor_id(name)"
    ).eq("id", 1).execute()
    assert r.data == [{"title": "Alpha", "author": {"name": "Ann"}, "editor": {"name": "Bob"}}]
    r = svc.table("rest_books").select("title,rest_authors!rest_books_author_id_fkey(name)").eq("id", 3).execute()
    assert r.data == [{"title": "Gamma", "rest_authors": {"name": "Bob"}}]
    # by foreign-key column name
    r = svc.table("rest_books").select("title,author_id(name)").eq("id", 2).execute()
    assert r.data == [{"title": "Beta", "author_id": {"name": "Ann"}}]


def test_embed_ambiguous_is_300(svc: SyncPostgrestClient) -> None:
    with pytest.raises(APIError) as exc:
        svc.table("rest_books").select("title,rest_authors(name)").execute()
    assert exc.value.code == "PGRST201"
    assert isinstance(exc.value.details, list) and len(exc.value.details) == 2


def test_embed_one_to_many_filters_order_limit(svc: SyncPostgrestClient) -> None:
    r = (svc.table("rest_authors").select("name,books:rest_books!author_id(title,pages)")
         .order("id").order("pages", desc=True, foreign_table="books").execute())
    assert r.data[0] == {"name": "Ann", "books": [{"title": "Beta", "pages": 200}, {"title": "Alpha", "pages": 100}]}
    assert r.data[2]["books"] == [{"title": 'Delta, the "quoted"', "pages": 50}]
    r = (svc.table("rest_authors").select("name,books:rest_books!author_id(title)")
         .eq("id", 1).limit(1, foreign_table="books").execute())
    assert r.data == [{"name": "Ann", "books": [{"title": "Alpha"}]}]
    r = (svc.table("rest_authors").select("name,books:rest_books!author_id(title)")
         .eq("books.title", "Beta").eq("id", 1).execute())
    assert r.data == [{"name": "Ann", "books": [{"title": "Beta"}]}]
    r = (svc.table("rest_authors").select("name,books:rest_books!author_id(title)")
         .or_("title.eq.Alpha,pages.gt.150", reference_table="books").eq("id", 1)
         .order("title", foreign_table="books").execute())
    assert r.data == [{"name": "Ann", "books": [{"title": "Alpha"}, {"title": "Beta"}]}]
    r = (svc.table("rest_authors").select("name,books:rest_books!author_id(title)")
         .not_.or_("title.eq.Alpha,pages.gt.150", reference_table="books").eq("id", 1).execute())
    assert r.data == [{"name": "Ann", "books": []}]


def test_embed_inner_and_null_filter(svc: SyncPostgrestClient) -> None:
    r = (svc.table("rest_authors").select("name,rest_books!author_id!inner(title)")
         .eq("rest_books.title", "Gamma").execute())
    assert r.data == [{"name": "Bob", "rest_books": [{"title": "Gamma"}]}]
    r = (svc.table("rest_books").select("id,editor:rest_authors!editor_id(name)")
         .is_("editor", "null").order("id").execute())
    assert [x["id"] for x in r.data] == [2, 4]
    r = (svc.table("rest_books").select("id,editor:rest_authors!editor_id!left(name)").order("id").execute())
    assert len(r.data) == 4


def test_embed_many_to_many_nested_and_spread(svc: SyncPostgrestClient) -> None:
    r = svc.table("rest_films").select("title,rest_actors(name)").order("id").execute()
    assert r.data[0]["rest_actors"] == [{"name": "De Niro"}, {"name": "Pacino"}]
    r = svc.table("rest_actors").select("name,rest_films(title,rest_actors(name))").eq("id", 3).execute()
    assert r.data == [{"name": "Reno", "rest_films": [
        {"title": "Ronin", "rest_actors": [{"name": "De Niro"}, {"name": "Reno"}]}]}]
    r = svc.table("rest_books").select("title,...rest_authors!author_id(author_name:name,country)").eq("id", 1).execute()
    assert r.data == [{"title": "Alpha", "author_name": "Ann", "country": "NO"}]
    r = (svc.table("rest_authors").select("name,rest_books!author_id(title,editor:rest_authors!editor_id(name))")
         .eq("id", 1).execute())
    assert r.data[0]["rest_books"][0] == {"title": "Alpha", "editor": {"name": "Bob"}}


def test_embedding_through_views(svc: SyncPostgrestClient) -> None:
    # the view renames rest_books.author_id to writer; the foreign key still applies
    r = svc.table("rest_books_public").select("title,rest_authors(name)").eq("id", 1).execute()
    assert r.data == [{"title": "Alpha", "rest_authors": {"name": "Ann"}}]
    r = svc.table("rest_authors").select("name,rest_books_public(title)").eq("id", 2).execute()
    assert r.data == [{"name": "Bob", "rest_books_public": [{"title": "Gamma"}]}]
    r = svc.table("rest_books_public").select("title,author:writer(name)").eq("id", 3).execute()
    assert r.data == [{"title": "Gamma", "author": {"name": "Bob"}}]


def test_order_by_related_to_one(svc: SyncPostgrestClient, rest_db: str, stack: StackHandle) -> None:
    resp = httpx.get(f"{rest_db}/rest_books", params={
        "select": "id,author:rest_authors!author_id(name)", "order": "author(name).desc,id.asc"},
        headers=client_headers(stack.service_role_key))
    assert resp.status_code == 200, resp.text
    assert [x["id"] for x in resp.json()] == [4, 3, 1, 2]


def test_embed_unknown_relationship(svc: SyncPostgrestClient) -> None:
    with pytest.raises(APIError) as exc:
        svc.table("rest_books").select("title,rest_kinds(*)").execute()
    assert exc.value.code == "PGRST200"
    with pytest.raises(APIError) as exc:
        svc.table("rest_books").select("title").eq("rest_kinds.id", 1).execute()
    assert exc.value.code == "PGRST108"


# -- writes ----------------------------------------------------------------------------------------------

def test_insert_single_bulk_and_returning(svc: SyncPostgrestClient) -> None:
    r = svc.table("rest_items").insert({"name": "a1"}).execute()
    assert r.data[0]["name"] == "a1" and r.data[0]["qty"] == 1 and r.data[0]["note"] == "none"
    r = svc.table("rest_items").insert([{"name": "b1", "qty": 5}, {"name": "b2", "qty": 6}],
                                       count=CountMethod.exact).execute()
    assert [x["qty"] for x in r.data] == [5, 6]
    assert r.count == 2
    r = svc.table("rest_items").insert({"name": "c1"}, returning=ReturnMethod.minimal).execute()
    assert r.data == []
    r = svc.table("rest_items").insert({"name": "c2", "qty": 3}).select("name,qty").execute()
    assert r.data == [{"name": "c2", "qty": 3}]


def test_insert_missing_default(svc: SyncPostgrestClient) -> None:
    rows = [{"name": "m1", "qty": 7}, {"name": "m2"}]
    with pytest.raises(APIError) as exc:  # keys differ: PostgREST's default is null for missing keys
        svc.table("rest_items").insert(rows).execute()
    assert exc.value.code == "23502"
    r = svc.table("rest_items").insert(rows, default_to_null=False).execute()
    assert [(x["name"], x["qty"], x["note"]) for x in r.data] == [("m1", 7, "none"), ("m2", 1, "none")]


def test_upsert_merge_ignore_on_conflict(svc: SyncPostgrestClient) -> None:
    svc.table("rest_kinds").upsert({"id": 10, "label": "ten"}).execute()
    r = svc.table("rest_kinds").upsert({"id": 10, "label": "TEN"}).execute()
    assert r.data == [{"id": 10, "label": "TEN"}]
    r = svc.table("rest_kinds").upsert({"id": 10, "label": "ignored"}, ignore_duplicates=True).execute()
    assert r.data == []
    assert svc.table("rest_kinds").select("label").eq("id", 10).single().execute().data == {"label": "TEN"}
    code = str(uuid.uuid4())
    svc.table("rest_items").insert({"name": "u1", "code": code}).execute()
    r = svc.table("rest_items").upsert({"name": "u2", "code": code}, on_conflict="code").execute()
    assert r.data[0]["name"] == "u2"
    assert len(svc.table("rest_items").select("id").eq("code", code).execute().data) == 1


def test_update_delete_with_filters(svc: SyncPostgrestClient) -> None:
    svc.table("rest_kinds").insert([{"id": 20, "label": "x"}, {"id": 21, "label": "x"}]).execute()
    r = svc.table("rest_kinds").update({"label": "y"}).eq("label", "x").execute()
    assert sorted(x["id"] for x in r.data) == [20, 21]
    r = svc.table("rest_kinds").update({"label": "z"}, returning=ReturnMethod.minimal).eq("id", 20).execute()
    assert r.data == []
    assert svc.table("rest_kinds").select("label").eq("id", 20).single().execute().data == {"label": "z"}
    r = svc.table("rest_kinds").delete().in_("id", [20, 21]).execute()
    assert sorted(x["id"] for x in r.data) == [20, 21]
    assert svc.table("rest_kinds").select("id").in_("id", [20, 21]).execute().data == []


def test_max_affected(svc: SyncPostgrestClient) -> None:
    svc.table("rest_kinds").insert([{"id": 30, "label": "m"}, {"id": 31, "label": "m"}]).execute()
    with pytest.raises(APIError) as exc:
        svc.table("rest_kinds").update({"label": "n"}).eq("label", "m").max_affected(1).execute()
    assert exc.value.code == "PGRST124"
    assert len(svc.table("rest_kinds").select("id").eq("label", "m").execute().data) == 2
    svc.table("rest_kinds").delete().eq("label", "m").max_affected(2).execute()


def test_put_location_rollback(rest_db: str, stack: StackHandle) -> None:
    h = {**client_headers(stack.service_role_key), "Prefer": "return=representation"}
    r = httpx.put(f"{rest_db}/rest_kinds?id=eq.40", json={"id": 40, "label": "put"}, headers=h)
    assert r.status_code == 200 and r.json() == [{"id": 40, "label": "put"}]
    r = httpx.put(f"{rest_db}/rest_kinds?id=eq.40", json={"id": 40, "label": "put2"}, headers=h)
    assert r.json() == [{"id": 40, "label": "put2"}]
    r = httpx.put(f"{rest_db}/rest_kinds?id=eq.41", json={"id": 40, "label": "bad"}, headers=h)
    assert r.status_code == 400 and r.json()["code"] == "PGRST115"
    r = httpx.put(f"{rest_db}/rest_kinds?label=eq.x", json={"id": 40, "label": "bad"}, headers=h)
    assert r.status_code == 405 and r.json()["code"] == "PGRST105"
    h2 = {**client_headers(stack.service_role_key), "Prefer": "return=headers-only"}
    r = httpx.post(f"{rest_db}/rest_kinds", json={"id": 42, "label": "loc"}, headers=h2)
    assert r.status_code == 201
    assert r.headers["location"] == "/rest_kinds?id=eq.42"
    h3 = {**client_headers(stack.service_role_key), "Prefer": "tx=rollback,return=representation"}
    r = httpx.post(f"{rest_db}/rest_kinds", json={"id": 43, "label": "gone"}, headers=h3)
    assert r.status_code == 201 and r.json() == [{"id": 43, "label": "gone"}]
    r = httpx.get(f"{rest_db}/rest_kinds?id=eq.43", headers=client_headers(stack.service_role_key))
    assert r.json() == []


def test_bulk_insert_is_atomic(svc: SyncPostgrestClient) -> None:
    with pytest.raises(APIError) as exc:
        svc.table("rest_kinds").insert([{"id": 50, "label": "ok"}, {"id": 50, "label": "dup"}]).execute()
    assert exc.value.code == "23505"
    assert svc.table("rest_kinds").select("id").eq("id", 50).execute().data == []


# -- rpc -------------------------------------------------------------------------------------------------

def test_rpc_scalar_overloads_get(svc: SyncPostgrestClient) -> None:
    assert svc.rpc("rest_add", {"a": 1, "b": 2}).execute().data == 3
    assert svc.rpc("rest_add", {"a": 1, "b": 2, "c": 3}).execute().data == 6
    assert svc.rpc("rest_add", {"a": 4, "b": 5}, get=True).execute().data == 9
    assert svc.rpc("rest_hello", {}).execute().data == "hello"
    assert svc.rpc("rest_hello", {}, get=True).execute().data == "hello"
    assert svc.rpc("rest_over", {"x": 1}).execute().data == "int"
    assert svc.rpc("rest_over", {"y": "a"}).execute().data == "text"


def test_rpc_json_params(svc: SyncPostgrestClient, rest_db: str, stack: StackHandle) -> None:
    assert svc.rpc("rest_echo", {"k": [1, 2]}).execute().data == {"k": [1, 2]}
    h = {**client_headers(stack.service_role_key), "Prefer": "params=single-object"}
    r = httpx.post(f"{rest_db}/rpc/rest_single", json={"anything": True}, headers=h)
    assert r.status_code == 200 and r.json() == {"anything": True}


def test_rpc_setof_table_filters_order(svc: SyncPostgrestClient) -> None:
    r = svc.rpc("rest_books_by", {"author": 1}).select("title").order("title", desc=True).execute()
    assert r.data == [{"title": "Beta"}, {"title": "Alpha"}]
    r = svc.rpc("rest_books_by", {"author": 1}).select("title").gt("pages", 150).execute()
    assert r.data == [{"title": "Beta"}]
    r = svc.rpc("rest_books_by", {"author": 1}, get=True).select("id,author:rest_authors!author_id(name)").execute()
    assert r.data[0]["author"] == {"name": "Ann"}
    r = svc.rpc("rest_table_fn", {"lim": 4}).select("sq").gte("n", 3).execute()
    assert r.data == [{"sq": 9}, {"sq": 16}]
    assert svc.rpc("rest_author_of", {"book": 3}).execute().data["name"] == "Bob"
    assert svc.rpc("rest_words", {}).execute().data == ["w1", "w2", "w3"]
    assert svc.rpc("rest_words", {"prefix": "x"}, get=True).execute().data == ["x1", "x2", "x3"]
    r = svc.rpc("rest_books_by", {"author": 2}).select("title").single().execute()
    assert r.data == {"title": "Gamma"}


def test_rpc_void_volatile_and_errors(svc: SyncPostgrestClient) -> None:
    assert svc.rpc("rest_noop", {}).execute().data == []
    assert svc.rpc("rest_touch", {"n": 60}).execute().data == 60
    with pytest.raises(APIError) as exc:  # volatile write through GET runs read-only
        svc.rpc("rest_touch", {"n": 61}, get=True).execute()
    assert exc.value.code == "25006"
    with pytest.raises(APIError) as exc:
        svc.rpc("rest_nope", {}).execute()
    assert exc.value.code == "PGRST202"
    with pytest.raises(APIError) as exc:
        svc.rpc("rest_add", {"a": 1}).execute()
    assert exc.value.code == "PGRST202"
    with pytest.raises(APIError) as exc:
        svc.rpc("rest_raise", {}).execute()
    assert (exc.value.code, exc.value.message, exc.value.details, exc.value.hint) == (
        "PT402", "Payment required", "pay up", "card")


def test_response_status_and_headers_gucs(rest_db: str, stack: StackHandle) -> None:
    r = httpx.post(f"{rest_db}/rpc/rest_teapot", json={}, headers=client_headers(stack.service_role_key))
    assert r.status_code == 418
    assert r.headers["x-brew"] == "tea" and r.headers["cache-control"] == "no-store"
    assert r.json() == {"short": "stout"}


def test_prefer_timezone(rest_db: str, stack: StackHandle) -> None:
    h = {**client_headers(stack.service_role_key), "Prefer": "timezone=America/Los_Angeles"}
    r = httpx.get(f"{rest_db}/rest_books", params={"select": "t:created_at::text", "id": "eq.1"}, headers=h)
    assert r.status_code == 200 and r.json()[0]["t"].endswith(("-08", "-07"))
    assert "timezone=America/Los_Angeles" in r.headers["preference-applied"]
    h["Prefer"] = "timezone=Not/AZone"
    r = httpx.get(f"{rest_db}/rest_books", params={"select": "t:created_at::text", "id": "eq.1"}, headers=h)
    assert r.status_code == 200 and r.json()[0]["t"].endswith("+00")


def test_request_settings_visible_to_sql(rest_db: str, stack: StackHandle) -> None:
    sub = str(uuid.uuid4())
    with user_client(rest_db, stack, sub) as c:
        data = c.rpc("rest_me", {}).execute().data
    assert data == {"role": "authenticated", "sub": sub, "method": "POST", "path": "/rpc/rest_me", "apikey": True}


# -- auth and RLS ----------------------------------------------------------------------------------------

def test_rls_two_users_and_anon(rest_db: str, stack: StackHandle, anon: SyncPostgrestClient) -> None:
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    with user_client(rest_db, stack, u1) as c1, user_client(rest_db, stack, u2) as c2:
        r = c1.table("rest_notes").insert({"body": "mine"}).execute()
        assert r.data[0]["owner"] == u1
        c2.table("rest_notes").insert({"body": "theirs"}).execute()
        assert [x["body"] for x in c1.table("rest_notes").select("body").execute().data] == ["mine"]
        assert [x["body"] for x in c2.table("rest_notes").select("body").execute().data] == ["theirs"]
        # cannot write a row owned by someone else
        with pytest.raises(APIError) as exc:
            c1.table("rest_notes").insert({"body": "spoof", "owner": u2}).execute()
        assert exc.value.code == "42501"
        # updates/deletes of other users' rows match nothing
        assert c1.table("rest_notes").update({"body": "hacked"}).eq("body", "theirs").execute().data == []
        assert c1.table("rest_notes").delete().eq("body", "theirs").execute().data == []
        assert [x["body"] for x in c2.table("rest_notes").select("body").execute().data] == ["theirs"]
    with pytest.raises(APIError) as exc:
        anon.table("rest_notes").select("*").execute()
    assert exc.value.code == "42501"


def test_auth_errors(rest_db: str, stack: StackHandle) -> None:
    r = httpx.get(f"{rest_db}/rest_kinds", headers={"apikey": stack.anon_key, "Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["code"] == "PGRST301"
    assert set(r.json()) == {"code", "message", "details", "hint"}
    expired = user_token(stack.jwt_secret, str(uuid.uuid4()), exp_in=-60)
    r = httpx.get(f"{rest_db}/rest_kinds", headers={"apikey": stack.anon_key, "Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["message"] == "JWT expired"
    assert "invalid_token" in r.headers["www-authenticate"]
    wrong = user_token("x" * 40, str(uuid.uuid4()))
    r = httpx.get(f"{rest_db}/rest_kinds", headers={"apikey": stack.anon_key, "Authorization": f"Bearer {wrong}"})
    assert r.status_code == 401
    r = httpx.get(f"{rest_db}/rest_kinds")
    assert r.status_code == 401
    # apikey alone is enough (anon role)
    r = httpx.get(f"{rest_db}/rest_kinds?select=id&id=eq.1", headers={"apikey": stack.anon_key})
    assert r.status_code == 200 and r.json() == [{"id": 1}]


def test_insufficient_privilege_status(rest_db: str, stack: StackHandle) -> None:
    r = httpx.get(f"{rest_db}/rest_notes", headers=client_headers(stack.anon_key))
    assert r.status_code == 401 and r.json()["code"] == "42501"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("revoke select on public.rest_kinds from authenticated")
    try:
        tok = user_token(stack.jwt_secret, str(uuid.uuid4()))
        r = httpx.get(f"{rest_db}/rest_kinds", headers=client_headers(stack.anon_key, tok))
        assert r.status_code == 403 and r.json()["code"] == "42501"
    finally:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("grant select on public.rest_kinds to authenticated")


# -- schema cache ------------------------------------------------------------------------------------------

def test_schema_reload_on_ddl(svc: SyncPostgrestClient, rest_db: str, stack: StackHandle) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("drop table if exists public.rest_late; create table public.rest_late (id int primary key)")
    try:
        # the event trigger notifies pgrst; no explicit NOTIFY needed
        wait_for_tables(rest_db, stack.service_role_key, ["rest_late"])
        assert svc.table("rest_late").insert({"id": 1}).execute().data == [{"id": 1}]
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("alter table public.rest_late add column extra text default 'e'")
        import time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = svc.table("rest_late").select("extra").execute().data
                break
            except APIError:
                time.sleep(0.05)
        assert data == [{"extra": "e"}]
    finally:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("drop table if exists public.rest_late")


def test_recovers_after_connections_are_killed(svc: SyncPostgrestClient, rest_db: str, stack: StackHandle) -> None:
    """Like `appkit db reset` under a running stack: every authenticator backend (the pool and
    the LISTEN connection) is terminated; reads recover and the schema listener reconnects."""
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = 'authenticator'")
        conn.execute("drop table if exists public.rest_after_kill; create table public.rest_after_kill (id int)")
    try:
        assert svc.table("rest_kinds").select("id").eq("id", 1).execute().data == [{"id": 1}]
        wait_for_tables(rest_db, stack.service_role_key, ["rest_after_kill"])
    finally:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("drop table if exists public.rest_after_kill")


def test_schema_profiles(rest_db: str, stack: StackHandle) -> None:
    with (SyncPostgrestClient(rest_db, schema="private", headers=client_headers(stack.service_role_key)) as c,
          pytest.raises(APIError) as exc):
        c.table("rest_kinds").select("*").execute()
    assert exc.value.code == "PGRST106"
    with SyncPostgrestClient(rest_db, schema="public", headers=client_headers(stack.service_role_key)) as c:
        assert c.table("rest_kinds").select("id").eq("id", 1).execute().data == [{"id": 1}]


def test_openapi_document(rest_db: str, stack: StackHandle) -> None:
    r = httpx.get(rest_db + "/", headers={**client_headers(stack.anon_key), "Accept": "application/openapi+json"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["swagger"] == "2.0"
    books = doc["definitions"]["rest_books"]
    assert books["properties"]["id"]["format"] == "integer"
    assert books["properties"]["tags"]["format"] == "text[]"
    assert "title" in books["required"] and "id" not in books["required"]
    assert "Primary Key" in books["properties"]["id"]["description"]
    assert "<fk table='rest_authors' column='id'/>" in books["properties"]["author_id"]["description"]
    assert "/rest_books" in doc["paths"]
    assert "/rpc/rest_add" in doc["paths"]
