"""Hostile requests for every route of every service, as hypothesis strategies, and the
check each answer must pass (no 5xx; errors in the service's documented shape).

Shared by the property tests (tests/security/test_no_5xx.py) and the long runs
(benchmarks/fuzz_services.py)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

# -- building blocks ---------------------------------------------------------------------
NASTY_TEXT = [
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff", "²", "٣", "\U0001d7d8", "null", "NULL", "true", "-1", "0", "1e309",
    "9" * 40, "../../etc/passwd", "..", "%", "%00", "%ff", "'", '"', "\\", "()", "(a,b", "{", "}", "[]",
    "a" * 3000, "é", "🙂", "\u202e", "*", ",", ".", "eq.1", "in.(1,2", "not.is.null", "or=(a.eq.1)",
    "in.(\"null\",x)", "cs.{a,b}", "fts.word", "like.*a*", "1; drop table x", "<script>", "\r\n", "\t",
]
text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=40))
number = st.one_of(st.integers(), st.integers(min_value=10**30, max_value=10**60), st.floats(),
                   st.sampled_from([2**63, -(2**63) - 1, 1e308, -0.0]))
scalar = st.one_of(st.none(), st.booleans(), number, text)
json_value = st.recursive(scalar, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
                          max_leaves=12)


def _dumps(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \\udXXX escapes (what an attacker sends)
    return json.dumps(value, allow_nan=True).encode()


DEEP = [b"[" * 100_000, b"{\"a\":" * 50_000, b"[" * 600 + b"]" * 600, b'"\\ud800"', b'{"name": "\\udc00"}',
        b'{"email": "a\\u0000@b.c"}', b"\xff\xfe\xfd", b"{", b"nan", b"", b"[1e999999]",
        b'{"a":' + b"9" * 5000 + b"}"]


def body_for(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[bytes]:
    """A JSON object with the route's own fields (each maybe wrong), or anything hostile."""
    obj = st.fixed_dictionaries({}, optional={k: st.one_of(v, json_value) for k, v in fields.items()})
    return st.one_of(
        obj.map(_dumps), obj.map(_dumps), json_value.map(_dumps), st.sampled_from(DEEP), st.binary(max_size=64),
    )


def segment() -> st.SearchStrategy[str]:
    """A path segment: ordinary, or percent-encoded trouble."""
    return st.one_of(
        st.sampled_from(["fuzz", "fuzz-bucket", "x", "a.txt", "dir/a.txt", str(uuid.uuid4()), "00000000-0000-0000-0000"
                         "-000000000000"]),
        st.sampled_from(["x%00", "%00", "%ff", "%c3%28", "x%2f..%2fy", "%e2%82", "a%20b", "%F0%9F%99%82", "..",
                         "x" * 300, "%25", "%5C", "%0d%0a"]),
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
        .map(lambda s: "".join(c if c.isalnum() else f"%{ord(c):02X}" if ord(c) < 128 else c for c in s)),
    )


@dataclass
class Route:
    method: str
    path: str  # with {name} placeholders
    fields: dict[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()


@dataclass
class FuzzRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:
        return (f"{self.method} {self.path} query={self.query!r} headers={self.headers!r} "
                f"body={self.body[:300]!r}{'...' if len(self.body) > 300 else ''}")


HEADER_VALUES: dict[str, st.SearchStrategy[str]] = {
    "content-type": st.sampled_from(["application/json", "text/plain", "application/octet-stream", "text/csv",
                                     "multipart/form-data; boundary=x", "application/offset+octet-stream",
                                     "image/png", "application/x-www-form-urlencoded", "garbage", ""]),
    "prefer": st.sampled_from(["return=representation", "count=exact", "resolution=merge-duplicates",
                               "missing=default", "return=minimal, count=planned", "tx=rollback", "handling=strict",
                               "max-affected=1", "garbage=1", "count=estimated", "params=single-object"]),
    "range": st.sampled_from(["0-9", "bytes=0-1", "bytes=5-1", "x", "0-", "-5", "bytes=0-99999999999999999999"]),
    "range-unit": st.sampled_from(["items", "x"]),
    "accept": st.sampled_from(["application/json", "text/csv", "application/vnd.pgrst.object+json",
                               "application/geo+json", "*/*", "garbage/x", "application/vnd.pgrst.plan+json"]),
    "accept-profile": st.sampled_from(["public", "appkit", "auth", "nope", ""]),
    "content-profile": st.sampled_from(["public", "appkit", "nope"]),
    "upload-length": st.sampled_from(["10", "²", "٣", "-1", "99999999999999999999999", "0", "x", ""]),
    "upload-offset": st.sampled_from(["0", "²", "5", "-1", "99999999999999999999999", "x"]),
    "upload-metadata": st.sampled_from(["bucketName ZnV6eg==,objectName YS50eHQ=", "bucketName !!!", "x",
                                        "bucketName ZnV6eg==,objectName AA==", "objectName /w==", ""]),
    "tus-resumable": st.sampled_from(["1.0.0", "0.2", ""]),
    "x-upsert": st.sampled_from(["true", "false", "x"]),
    "cache-control": st.sampled_from(["3600", "²", "max-age=1", "no-cache", "x\x7f"]),
    "x-supabase-api-version": st.sampled_from(["2024-01-01", "2020-01-01", "x"]),
    "x-metadata": st.sampled_from(["eyJhIjoxfQ==", "!!!", "bnVsbA==", "W10="]),
}


def requests_for(routes: list[Route], auth: st.SearchStrategy[dict[str, str]]) -> st.SearchStrategy[FuzzRequest]:
    @st.composite
    def build(draw: st.DrawFn) -> FuzzRequest:
        route = draw(st.sampled_from(routes))
        path = route.path
        while "{" in path:
            start = path.index("{")
            end = path.index("}", start)
            path = path[:start] + draw(segment()) + path[end + 1:]
        names = [*list(route.query), "select", "x", "apikey", "%00"]
        query = draw(st.lists(st.tuples(st.sampled_from(names), text), max_size=4))
        headers = dict(draw(auth))
        for name in draw(st.lists(st.sampled_from([*list(route.headers), "content-type", "accept"]), max_size=3,
                                  unique=True)):
            headers[name] = draw(HEADER_VALUES.get(name, st.just("x")))
        body = draw(body_for(route.fields)) if route.method in ("POST", "PUT", "PATCH", "DELETE") else b""
        return FuzzRequest(route.method, path, query, headers, body)

    return build()


def auth_headers(anon: str, service: str, user: str) -> st.SearchStrategy[dict[str, str]]:
    return st.sampled_from([
        {"apikey": service, "authorization": f"Bearer {service}"},
        {"apikey": service, "authorization": f"Bearer {service}"},
        {"apikey": anon, "authorization": f"Bearer {user}"},
        {"apikey": anon},
        {"apikey": anon, "authorization": "Bearer x.y.z"},
        {"apikey": "garbage"},
        {},
    ])


# -- the routes ----------------------------------------------------------------------------
email = st.one_of(st.emails().map(str), text)
REST_ROUTES = [
    Route("GET", "/rest/v1/{table}", query=("select", "order", "limit", "offset", "id", "body", "or", "and", "on_conflict",
                                            "columns")),
    Route("GET", "/rest/v1/fuzz_items", query=("select", "order", "limit", "offset", "id", "body", "n", "or", "and",
                                               "tags", "data", "data->>k", "not.id")),
    Route("HEAD", "/rest/v1/fuzz_items", query=("select", "id")),
    Route("POST", "/rest/v1/fuzz_items", {"id": number, "body": text, "n": number, "tags": json_value,
                                          "data": json_value}, query=("columns", "on_conflict", "select"),
          headers=("prefer", "content-profile")),
    Route("PATCH", "/rest/v1/fuzz_items", {"body": text, "n": number, "data": json_value}, query=("id", "body", "n"),
          headers=("prefer",)),
    Route("DELETE", "/rest/v1/fuzz_items", query=("id", "n", "body"), headers=("prefer",)),
    Route("POST", "/rest/v1/rpc/fuzz_echo", {"a": json_value, "b": text}, headers=("prefer",)),
    Route("GET", "/rest/v1/rpc/fuzz_echo", query=("a", "b")),
    Route("POST", "/rest/v1/rpc/{fn}", {"a": json_value}),
    Route("GET", "/rest/v1/", headers=("accept-profile", "accept")),
]
AUTH_ROUTES = [
    Route("POST", "/auth/v1/signup", {"email": email, "password": text, "phone": text, "data": json_value,
                                      "code_challenge": text, "code_challenge_method": text}),
    Route("POST", "/auth/v1/token", {"email": email, "password": text, "refresh_token": text, "auth_code": text,
                                     "code_verifier": text, "phone": text}, query=("grant_type",)),
    Route("POST", "/auth/v1/logout", query=("scope",)),
    Route("GET", "/auth/v1/user"),
    Route("PUT", "/auth/v1/user", {"email": email, "password": text, "data": json_value, "phone": text,
                                   "nonce": text}),
    Route("POST", "/auth/v1/recover", {"email": email}),
    Route("POST", "/auth/v1/otp", {"email": email, "phone": text, "create_user": json_value, "data": json_value}),
    Route("POST", "/auth/v1/magiclink", {"email": email}),
    Route("POST", "/auth/v1/resend", {"email": email, "type": text, "phone": text}),
    Route("GET", "/auth/v1/verify", query=("token", "type", "redirect_to", "token_hash")),
    Route("POST", "/auth/v1/verify", {"token": text, "type": text, "email": email, "token_hash": text,
                                      "phone": text}),
    Route("GET", "/auth/v1/settings"),
    Route("GET", "/auth/v1/authorize", query=("provider", "redirect_to", "code_challenge")),
    Route("POST", "/auth/v1/factors", {"factor_type": text, "friendly_name": text, "phone": text}),
    Route("POST", "/auth/v1/factors/{id}/challenge", {"channel": text}),
    Route("POST", "/auth/v1/factors/{id}/verify", {"challenge_id": text, "code": text}),
    Route("DELETE", "/auth/v1/factors/{id}"),
    Route("POST", "/auth/v1/invite", {"email": email, "data": json_value}),
    Route("GET", "/auth/v1/admin/users", query=("page", "per_page", "filter")),
    Route("POST", "/auth/v1/admin/users", {"email": email, "password": text, "phone": text, "user_metadata": json_value,
                                           "app_metadata": json_value, "email_confirm": json_value,
                                           "ban_duration": text, "role": text, "id": text}),
    Route("GET", "/auth/v1/admin/users/{id}"),
    Route("PUT", "/auth/v1/admin/users/{id}", {"email": email, "password": text, "user_metadata": json_value,
                                                "app_metadata": json_value, "ban_duration": text}),
    Route("DELETE", "/auth/v1/admin/users/{id}", {"should_soft_delete": json_value}),
    Route("GET", "/auth/v1/admin/users/{id}/factors"),
    Route("DELETE", "/auth/v1/admin/users/{id}/factors/{fid}"),
    Route("POST", "/auth/v1/admin/generate_link", {"type": text, "email": email, "password": text,
                                                    "new_email": email, "data": json_value}),
    Route("GET", "/auth/v1/_appkit/messages", query=("to", "limit")),
]
STORAGE_ROUTES = [
    Route("GET", "/storage/v1/bucket"),
    Route("POST", "/storage/v1/bucket", {"id": text, "name": text, "public": json_value,
                                         "file_size_limit": json_value, "allowed_mime_types": json_value}),
    Route("GET", "/storage/v1/bucket/{b}"),
    Route("PUT", "/storage/v1/bucket/{b}", {"public": json_value, "file_size_limit": json_value,
                                            "allowed_mime_types": json_value}),
    Route("DELETE", "/storage/v1/bucket/{b}"),
    Route("POST", "/storage/v1/bucket/{b}/empty"),
    Route("POST", "/storage/v1/object/list/{b}", {"prefix": text, "limit": json_value, "offset": json_value,
                                                  "sortBy": json_value, "search": text}),
    Route("POST", "/storage/v1/object/list-v2/{b}", {"prefix": text, "limit": json_value, "cursor": text,
                                                     "with_delimiter": json_value}),
    Route("POST", "/storage/v1/object/move", {"bucketId": text, "sourceKey": text, "destinationKey": text,
                                              "destinationBucket": text}),
    Route("POST", "/storage/v1/object/copy", {"bucketId": text, "sourceKey": text, "destinationKey": text}),
    Route("POST", "/storage/v1/object/sign/{b}", {"expiresIn": json_value, "paths": json_value}),
    Route("POST", "/storage/v1/object/sign/{b}/{k}", {"expiresIn": json_value, "transform": json_value}),
    Route("GET", "/storage/v1/object/sign/{b}/{k}", query=("token", "download")),
    Route("POST", "/storage/v1/object/upload/sign/{b}/{k}", headers=("x-upsert",)),
    Route("PUT", "/storage/v1/object/upload/sign/{b}/{k}", query=("token",), headers=("x-upsert",)),
    Route("GET", "/storage/v1/object/info/{b}/{k}"),
    Route("GET", "/storage/v1/object/info/public/{b}/{k}"),
    Route("GET", "/storage/v1/object/public/{b}/{k}", query=("download",), headers=("range",)),
    Route("GET", "/storage/v1/object/{b}/{k}", headers=("range",)),
    Route("HEAD", "/storage/v1/object/{b}/{k}"),
    Route("POST", "/storage/v1/object/{b}/{k}", headers=("x-upsert", "cache-control", "x-metadata")),
    Route("PUT", "/storage/v1/object/{b}/{k}", headers=("x-upsert", "cache-control")),
    Route("DELETE", "/storage/v1/object/{b}/{k}"),
    Route("DELETE", "/storage/v1/object/{b}", {"prefixes": json_value}),
    Route("POST", "/storage/v1/upload/resumable", headers=("upload-length", "upload-metadata", "tus-resumable",
                                                           "x-upsert")),
    Route("PATCH", "/storage/v1/upload/resumable/{id}", headers=("upload-offset", "tus-resumable")),
    Route("HEAD", "/storage/v1/upload/resumable/{id}", headers=("tus-resumable",)),
    Route("DELETE", "/storage/v1/upload/resumable/{id}", headers=("tus-resumable",)),
    Route("GET", "/storage/v1/render/image/public/{b}/{k}", query=("width", "height", "resize")),
]
REALTIME_ROUTES = [
    Route("POST", "/realtime/v1/api/broadcast", {"messages": json_value}),
    Route("POST", "/realtime/v1/api/broadcast/{topic}/events/{event}", {"a": json_value}, query=("private",)),
    Route("GET", "/realtime/v1/api/ping"),
]
ROUTES = {"rest": REST_ROUTES, "auth": AUTH_ROUTES, "storage": STORAGE_ROUTES, "realtime": REALTIME_ROUTES}

FIXTURE_SQL = [
    "create table if not exists public.fuzz_items (id bigint primary key, body text, n int, tags text[], data jsonb)",
    "alter table public.fuzz_items enable row level security",
    "drop policy if exists fuzz_all on public.fuzz_items",
    "create policy fuzz_all on public.fuzz_items for all to anon, authenticated using (true) with check (true)",
    "grant all on public.fuzz_items to anon, authenticated",
    "create or replace function public.fuzz_echo(a jsonb default null, b text default null) returns jsonb "
    "language sql stable as $$ select jsonb_build_object('a', a, 'b', b) $$",
    "grant execute on function public.fuzz_echo(jsonb, text) to anon, authenticated",
    "insert into storage.buckets (id, name, public) values ('fuzz-bucket', 'fuzz-bucket', true) on conflict do nothing",
    "notify pgrst, 'reload schema'",
]


# -- the check -------------------------------------------------------------------------------
def shape_problem(service: str, method: str, status: int, content_type: str, body: bytes) -> str | None:
    """Why an answer breaks the contract (a 5xx, or an error not in the service's shape)."""
    if status >= 500:
        return f"{status}"
    if status < 400 or method == "HEAD" or not body:
        return None
    if "json" not in content_type:
        if status in (408, 413, 414, 431) or body == b"Invalid HTTP request received.":
            return None  # answered by the connection layer before any service saw the request
        if status in (404, 405):
            return None  # a router's "Not Found"/"Method Not Allowed" for a path no route matches
            # (e.g. "/rest/v1/.." is normalised by the client to "/rest/", outside every service)
        return f"{status} with a non-JSON error body ({content_type!r})"
    try:
        data = json.loads(body)
    except ValueError:
        return f"{status} with an unparsable JSON error body"
    if not isinstance(data, dict):
        return f"{status} with a non-object error body"
    keys = set(data)
    ok = {
        "rest": {"code", "message"} <= keys,
        "auth": ({"code", "msg"} <= keys or {"code", "message"} <= keys or {"error", "error_description"} <= keys
                 or keys == {"message"}),
        "storage": {"statusCode", "error", "message"} <= keys or keys == {"message"},
        "realtime": "message" in keys,
    }[service]
    return None if ok else f"{status} with an error body not in {service}'s shape: {sorted(keys)}"
