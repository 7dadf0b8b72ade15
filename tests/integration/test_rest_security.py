"""/rest/v1 bad input and SQL-injection attempts: PostgREST's 4xx error shape, never a 500,
never a partial write, and the database left intact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from postgrest import APIError, SyncPostgrestClient

from tests.rest_support import SCHEMA_SQL, TABLES, client_headers, wait_for_tables
from tests.support import StackHandle

pytestmark = pytest.mark.integration

CANARY = "rest_kinds"


@pytest.fixture(scope="module")
def base(stack: StackHandle) -> Iterator[str]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        if conn.execute("select to_regclass('public.rest_books')").fetchone() == (None,):
            conn.execute(SCHEMA_SQL)
    url = stack.api_url + "/rest/v1"
    wait_for_tables(url, stack.service_role_key, TABLES)
    yield url


@pytest.fixture(scope="module")
def http(base: str, stack: StackHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, headers=client_headers(stack.service_role_key)) as c:
        yield c


def _intact(stack: StackHandle) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        row = conn.execute("select count(*) from public.rest_kinds where id in (1, 2)").fetchone()
        assert row == (2,)
        assert conn.execute("select to_regclass('public.rest_books')").fetchone() != (None,)


def _shape(r: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> dict[str, Any]:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "message", "details", "hint"}
    if code is not None:
        assert body["code"] == code, body
    return body


INJECT = "1;drop table public.rest_kinds;--"


@pytest.mark.parametrize(("path", "params", "status", "code"), [
    # select list
    ("/rest_books", {"select": "id,title);drop table public.rest_kinds;--"}, 400, "PGRST100"),
    ("/rest_books", {"select": 'id,"title;drop table public.rest_kinds"'}, 400, "42703"),
    ("/rest_books", {"select": "id::text);drop table public.rest_kinds;--"}, 400, "PGRST100"),
    ("/rest_books", {"select": "id::int4 from pg_user--"}, 400, "PGRST100"),
    ("/rest_books", {"select": "*,rest_authors!\"x);drop\"(*)"}, 400, "PGRST200"),
    # column names in filters
    ("/rest_books", {"id;drop table public.rest_kinds": "eq.1"}, 400, None),
    ("/rest_books", {"id;drop table rest_kinds": "eq.1"}, 400, "42703"),
    ("/rest_books", {'"id\\"; drop table public.rest_kinds; --"': "eq.1"}, 400, "42703"),
    ("/rest_books", {'"id""; drop table public.rest_kinds; --"': "eq.1"}, 400, "PGRST100"),
    # operators
    ("/rest_books", {"id": "eq);drop table public.rest_kinds;--.1"}, 400, "PGRST100"),
    ("/rest_books", {"id": "eq(any);drop.{1}"}, 400, "PGRST100"),
    ("/rest_books", {"body": "fts(english'); drop table public.rest_kinds; --).x"}, 400, None),
    # order
    ("/rest_books", {"order": "id;drop table public.rest_kinds"}, 400, None),
    ("/rest_books", {"order": "id.desc,(select 1)"}, 400, "PGRST100"),
    # logic trees
    ("/rest_books", {"or": "(id.eq.1);drop table public.rest_kinds;--"}, 400, "PGRST100"),
    ("/rest_books", {"or": "(id.eq.1,title.eq.x')) or 1=1--)"}, 400, "PGRST100"),
    ("/rest_books", {"or": "(id.eq.1,title.eq.\"x')) or 1=1--\")"}, 200, None),
    # limit / offset
    ("/rest_books", {"limit": "1;drop table public.rest_kinds"}, 400, "PGRST100"),
    ("/rest_books", {"offset": "-1"}, 400, "PGRST100"),
    # tables and functions
    ("/rest_kinds;drop table public.rest_kinds", {}, 404, "PGRST205"),
    ('/rest_kinds"', {}, 404, "PGRST205"),
    ("/rpc/rest_add;drop table public.rest_kinds", {}, 404, "PGRST202"),
    ("/rpc/pg_sleep", {"seconds": "1"}, 404, "PGRST202"),
    ("/a/b/c", {}, 404, "PGRST125"),
])
def test_injection_in_query_positions(http: httpx.Client, stack: StackHandle, path: str, params: dict[str, str],
                                      status: int, code: str | None) -> None:
    r = http.get(path, params=params)
    if status == 200:
        assert r.status_code == 200, r.text
    else:
        _shape(r, status, code)
    _intact(stack)


def test_injection_in_values_is_data(http: httpx.Client, stack: StackHandle) -> None:
    for value in ["'; drop table public.rest_kinds; --", "x' or '1'='1", "\\'", "$$", "%(p1)s", "%s", "{}"]:
        r = http.get("/rest_kinds", params={"label": f"eq.{value}"})
        assert r.status_code == 200 and r.json() == [], (value, r.text)
        r = http.get("/rest_kinds", params={"label": f"in.({json.dumps(value)},x)"})
        assert r.status_code == 200 and r.json() == [], (value, r.text)
        r = http.get("/rest_books", params={"select": "id", "meta->>" + "x": f"eq.{value}"})
        assert r.status_code == 200, r.text
    # json path keys are bound values too
    r = http.get("/rest_books", params={"select": "v:meta->>\"x');drop table public.rest_kinds;--\""})
    assert r.status_code == 200 and all(row["v"] is None for row in r.json())
    _intact(stack)


def test_injection_in_aliases_and_identifiers_is_quoted(http: httpx.Client) -> None:
    r = http.get("/rest_kinds", params={"select": '"a\\"b; drop":id', "id": "eq.1"})
    assert r.status_code == 200, r.text
    assert r.json() == [{'a"b; drop': 1}]
    r = http.get("/rest_kinds", params={"select": '"%(p1)s":id,%s:label', "id": "eq.1"})
    assert r.status_code == 200, r.text
    assert r.json() == [{"%(p1)s": 1, "%s": "one"}]


def test_injection_in_write_positions(http: httpx.Client, stack: StackHandle) -> None:
    r = http.post("/rest_kinds", json={"id; drop table public.rest_kinds": 1})
    _shape(r, 400, "PGRST204")
    r = http.post("/rest_kinds", params={"columns": 'id,"label); drop table public.rest_kinds; --"'},
                  json=[{"id": 90}])
    _shape(r, 400, "PGRST204")
    r = http.post("/rest_kinds", params={"on_conflict": "id) do nothing; drop table public.rest_kinds; --"},
                  json={"id": 1, "label": "x"}, headers={"Prefer": "resolution=merge-duplicates"})
    _shape(r, 400, "PGRST204")
    r = http.post("/rest_kinds", json={"id": 91, "label": "'); drop table public.rest_kinds; --"},
                  headers={"Prefer": "return=representation"})
    assert r.status_code == 201 and r.json()[0]["label"] == "'); drop table public.rest_kinds; --"
    r = http.patch("/rest_kinds", params={"id": "eq.91"}, json={"label": "$$ || (select 1) || $$"},
                   headers={"Prefer": "return=representation"})
    assert r.json() == [{"id": 91, "label": "$$ || (select 1) || $$"}]
    r = http.post("/rpc/rest_add", json={"a": "1); drop table public.rest_kinds; --", "b": 1})
    _shape(r, 400, "22P02")
    r = http.post("/rpc/rest_add", json={"a); drop table public.rest_kinds; --": 1, "b": 1})
    _shape(r, 404, "PGRST202")
    http.delete("/rest_kinds", params={"id": "eq.91"})
    _intact(stack)


@pytest.mark.parametrize("header", ["Accept-Profile", "Content-Profile"])
def test_injection_in_schema_headers(http: httpx.Client, stack: StackHandle, header: str) -> None:
    method = "GET" if header == "Accept-Profile" else "POST"
    for value in ['public"; drop table public.rest_kinds; --', "pg_catalog", "auth", "public,auth"]:
        r = http.request(method, "/rest_kinds", headers={header: value}, json={"id": 99} if method == "POST" else None)
        _shape(r, 406, "PGRST106")
    _intact(stack)


def test_injection_in_jwt_role(base: str, stack: StackHandle) -> None:
    token = jwt.encode({"role": "postgres; drop table public.rest_kinds", "exp": 2_000_000_000},
                       stack.jwt_secret, algorithm="HS256")
    r = httpx.get(f"{base}/rest_kinds", headers={"apikey": stack.anon_key, "Authorization": f"Bearer {token}"})
    assert 400 <= r.status_code < 500
    # a real but unprivileged-for-authenticator role is refused too
    token = jwt.encode({"role": "postgres", "exp": 2_000_000_000}, stack.jwt_secret, algorithm="HS256")
    r = httpx.get(f"{base}/rest_kinds", headers={"apikey": stack.anon_key, "Authorization": f"Bearer {token}"})
    assert r.status_code in (400, 401, 403), r.text
    _intact(stack)


# -- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [
    ("POST", "/rest_kinds", {"content": b"{not json"}, 400, "PGRST102"),
    ("POST", "/rest_kinds", {"content": b"[1, 2]"}, 400, "PGRST102"),
    ("POST", "/rest_kinds", {"content": b'"text"'}, 400, "PGRST102"),
    ("POST", "/rest_kinds", {"json": [{"id": 70}, {"label": "x"}]}, 400, "PGRST102"),
    ("POST", "/rest_kinds", {"json": {"id": "abc"}}, 400, "22P02"),
    ("POST", "/rest_kinds", {"json": {"id": 1, "label": "dup"}}, 409, "23505"),
    ("POST", "/rest_books", {"json": {"title": "t", "author_id": 999}}, 409, "23503"),
    ("POST", "/rest_kinds", {"json": {"nope": 1}}, 400, "PGRST204"),
    ("POST", "/rest_kinds", {"content": b"a,b", "headers": {"Content-Type": "application/xml"}}, 415, "PGRST107"),
    ("PATCH", "/rest_kinds", {"content": b"[{}]", "params": {"id": "eq.1"}}, 400, "PGRST102"),
    ("PATCH", "/rest_kinds", {"json": {"id": "x"}, "params": {"id": "eq.1"}}, 400, "22P02"),
    ("GET", "/rest_kinds", {"params": {"id": "eq.abc"}}, 400, "22P02"),
    ("GET", "/rest_kinds", {"params": {"id": "foo"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"id": "eq"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"id": "zz.1"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"id": "in.1,2"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"id": "is.maybe"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"or": "(id.eq.1"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"or": "id.eq.1"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"select": "id,rest_authors("}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"select": "id.count()"}}, 400, "PGRST123"),
    ("GET", "/rest_kinds", {"params": {"select": '"unterminated'}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"order": "id.sideways"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"params": {"order": "nope"}}, 400, "42703"),
    ("GET", "/rest_kinds", {"params": {"limit": "x"}}, 400, "PGRST100"),
    ("GET", "/rest_kinds", {"headers": {"Accept": "application/xml"}}, 406, "PGRST107"),
    ("GET", "/rest_kinds", {"headers": {"Prefer": "handling=strict, bogus=1"}}, 400, "PGRST122"),
    ("GET", "/rest_nope", {}, 404, "PGRST205"),
    ("GET", "/rest_books", {"params": {"published": "gt.not-a-date"}}, 400, "22007"),
    ("GET", "/rest_books", {"params": {"span": "ov.[1,"}}, 400, "22P02"),
    ("GET", "/rest_books", {"params": {"meta": "cs.{bad json"}}, 400, "22P02"),
    ("GET", "/rest_books", {"params": {"title": "match.("}}, 400, "2201B"),
    ("PUT", "/rest_kinds", {"json": [{"id": 1}, {"id": 2}], "params": {"id": "eq.1"}}, 400, "PGRST102"),
    ("TRACE", "/rest_kinds", {}, 405, "PGRST117"),
    ("PATCH", "/rpc/rest_add", {"json": {}}, 405, "PGRST101"),
    ("POST", "/rpc/rest_add", {"content": b"{bad"}, 400, "PGRST102"),
    ("POST", "/rpc/rest_add", {"json": {"a": 1, "b": 2, "zzz": 3}}, 404, "PGRST202"),
    ("POST", "/rpc/rest_over", {"json": {}}, 404, "PGRST202"),
])
def test_bad_input_4xx(http: httpx.Client, stack: StackHandle, method: str, path: str, kwargs: dict[str, Any],
                       status: int, code: str) -> None:
    r = http.request(method, path, **kwargs)
    _shape(r, status, code)
    _intact(stack)


def test_oversized_body_is_413(base: str, stack: StackHandle) -> None:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = (f"POST {parts.path}/rest_kinds HTTP/1.1\r\nHost: x\r\napikey: {stack.service_role_key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n")
        sock.sendall(head.encode() + b'[{"id":1}')
        sock.settimeout(5)
        data = ""
        while '"message"' not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk.decode()
    assert data.startswith("HTTP/1.1 413"), data[:200]
    assert '"code":"PGRST413"' in data


def test_failed_bulk_write_leaves_nothing(http: httpx.Client, stack: StackHandle) -> None:
    rows = [{"id": 200 + i, "label": "bulk"} for i in range(50)] + [{"id": "oops", "label": "bad"}]
    r = http.post("/rest_kinds", json=rows)
    _shape(r, 400, "22P02")
    r = http.get("/rest_kinds", params={"label": "eq.bulk"})
    assert r.json() == []


def test_errors_through_the_client(base: str, stack: StackHandle) -> None:
    with SyncPostgrestClient(base, headers=client_headers(stack.service_role_key)) as c:
        with pytest.raises(APIError) as exc:
            c.table("rest_kinds").insert({"id": 1, "label": "dup"}).execute()
        assert exc.value.code == "23505"
        assert "duplicate key" in (exc.value.message or "")
        assert exc.value.details == "Key (id)=(1) already exists."


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(select=_text, key=_text, value=_text, order=_text)
def test_fuzz_query_string_never_500(http: httpx.Client, select: str, key: str, value: str, order: str) -> None:
    params = {"select": select or "*", key or "id": value, "order": order or "id"}
    r = http.get("/rest_books", params=params)
    assert r.status_code < 500, (params, r.text)
    if r.status_code >= 400:
        assert set(r.json()) == {"code", "message", "details", "hint"}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | _text,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                         max_leaves=8))
def test_fuzz_write_bodies_never_500(http: httpx.Client, body: Any) -> None:
    r = http.post("/rest_kinds", json=body, headers={"Prefer": "tx=rollback"})
    assert r.status_code < 500, (body, r.text)
    r = http.post("/rpc/rest_add", json=body)
    assert r.status_code < 500, (body, r.text)
