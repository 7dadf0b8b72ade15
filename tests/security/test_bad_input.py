"""The bad inputs that produced 500s (issue: the stack under hostile input), each now a
400 in the service's own error shape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.fuzz_support import FIXTURE_SQL, shape_problem
from tests.realtime_support import user_token
from tests.support import StackHandle

pytestmark = pytest.mark.integration

DEEP = b"[" * 100_000


@pytest.fixture(scope="module")
def http(stack: StackHandle) -> Iterator[httpx.Client]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for statement in FIXTURE_SQL:
            conn.execute(statement)  # type: ignore[arg-type]
    with httpx.Client(base_url=stack.api_url, timeout=60,
                      headers={"apikey": stack.service_role_key,
                               "Authorization": f"Bearer {stack.service_role_key}"}) as client:
        for _ in range(200):  # until the schema cache has the new table
            if client.get("/rest/v1/fuzz_items?limit=0").status_code == 200:
                break
            time.sleep(0.05)
        yield client


def _bad(service: str, r: httpx.Response, code: str | None = None) -> None:
    assert r.status_code == 400, (r.status_code, r.text[:300])
    problem = shape_problem(service, r.request.method, r.status_code, r.headers.get("content-type", ""), r.content)
    assert problem is None, problem
    if code is not None:
        assert code in r.text, r.text


def test_deep_json_is_400_everywhere(http: httpx.Client) -> None:
    _bad("rest", http.post("/rest/v1/fuzz_items", content=DEEP), "PGRST102")
    _bad("rest", http.post("/rest/v1/rpc/fuzz_echo", content=b'{"a":' * 50_000), "PGRST102")
    _bad("auth", http.post("/auth/v1/signup", content=DEEP), "bad_json")
    _bad("auth", http.put("/auth/v1/admin/users/00000000-0000-0000-0000-000000000000", content=DEEP), "bad_json")
    _bad("storage", http.post("/storage/v1/bucket", content=DEEP))
    _bad("storage", http.post("/storage/v1/object/list/fuzz-bucket", content=DEEP))
    _bad("realtime", http.post("/realtime/v1/api/broadcast", content=DEEP))
    _bad("realtime", http.post("/realtime/v1/api/broadcast/t/events/e", content=DEEP,
                               headers={"content-type": "application/json"}))


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/storage/v1/bucket/x%00", None),
    ("GET", "/storage/v1/object/info/x%00/y", None),
    ("DELETE", "/storage/v1/object/x%00", {"prefixes": ["a"]}),
    ("POST", "/storage/v1/object/list/fuzz-bucket", {"prefix": "a\x00"}),
    ("DELETE", "/storage/v1/object/fuzz-bucket", {"prefixes": ["a\x00b"]}),
    ("POST", "/storage/v1/bucket", {"id": "a\x00", "name": "a\x00"}),
    ("GET", "/storage/v1/object/fuzz-bucket/%ff%fe.txt", None),
    ("POST", "/storage/v1/object/fuzz-bucket/bad%c3%28.txt", None),
])
def test_storage_refuses_nul_and_invalid_utf8(http: httpx.Client, method: str, path: str,
                                               body: dict[str, object] | None) -> None:
    _bad("storage", http.request(method, path, json=body))


def test_storage_refuses_a_lone_surrogate_in_json(http: httpx.Client) -> None:
    r = http.post("/storage/v1/bucket", content=b'{"id": "\\ud800", "name": "\\ud800"}')
    _bad("storage", r)


@pytest.mark.parametrize(("name", "value"), [("upload-length", "²"), ("upload-length", "9" * 5000)])
def test_tus_refuses_non_ascii_digits(http: httpx.Client, name: str, value: str) -> None:
    r = http.post("/storage/v1/upload/resumable", headers={
        "tus-resumable": "1.0.0", name: value.encode(),
        "upload-metadata": "bucketName ZnV6ei1idWNrZXQ=,objectName YS50eHQ="})
    assert r.status_code == 400 and r.json()["message"] == "Upload-Length header is required", r.text


def test_tus_refuses_a_non_ascii_offset(http: httpx.Client) -> None:
    r = http.post("/storage/v1/upload/resumable", headers={
        "tus-resumable": "1.0.0", "upload-length": "3",
        "upload-metadata": "bucketName ZnV6ei1idWNrZXQ=,objectName dHVzLW9mZnNldC50eHQ=", "x-upsert": "true"})
    assert r.status_code == 201, r.text
    r = http.patch(r.headers["location"], content=b"abc", headers={
        "tus-resumable": "1.0.0", "upload-offset": "²".encode(), "content-type": "application/offset+octet-stream"})
    assert r.status_code == 400 and "Upload-Offset" in r.json()["message"], r.text


@pytest.mark.parametrize(("method", "path", "body", "anon"), [
    ("POST", "/auth/v1/signup", {"email": "a\x00@example.com", "password": "Passw0rd!x"}, True),
    ("POST", "/auth/v1/signup", {"email": "nul-meta@example.com", "password": "Passw0rd!x", "data": {"k": "\x00"}},
     True),
    ("POST", "/auth/v1/token?grant_type=refresh_token", {"refresh_token": "x\x00"}, True),
    ("POST", "/auth/v1/token?grant_type=pkce", {"auth_code": "x\x00", "code_verifier": "y" * 50}, True),
    ("POST", "/auth/v1/verify", {"type": "email", "token_hash": "x\x00"}, True),
    ("POST", "/auth/v1/admin/users", {"email": "b\x00@example.com"}, False),
    ("GET", "/auth/v1/admin/users?filter=%00", None, False),
    ("GET", "/auth/v1/verify?type=signup&token=%00", None, True),
    ("POST", "/auth/v1/otp", {"email": "c@example.com\x00"}, True),
])
def test_auth_refuses_nul(stack: StackHandle, http: httpx.Client, method: str, path: str,
                          body: dict[str, object] | None, anon: bool) -> None:
    headers = {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"} if anon else {}
    r = http.request(method, path, content=json.dumps(body).encode() if body is not None else None, headers=headers)
    _bad("auth", r)


def test_auth_put_user_refuses_nul(stack: StackHandle, http: httpx.Client) -> None:
    token = user_token(stack)
    r = http.put("/auth/v1/user", json={"data": {"x": "\x00"}},
                 headers={"apikey": stack.anon_key, "Authorization": f"Bearer {token}"})
    _bad("auth", r)
