"""Storage at /storage/v1 through the official storage3 client: buckets, objects, RLS, errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import psycopg
import pytest
from psycopg import sql
from storage3.exceptions import StorageApiError

from tests.storage_support import User, async_client, create_user, headers_for, storage_url, sync_client
from tests.support import StackHandle

pytestmark = pytest.mark.integration

UID = uuid.uuid4().hex[:8]
PUB = f"st-pub-{UID}"      # public bucket, service role
PRIV = f"st-priv-{UID}"    # private bucket with per-user folder policies
LIM = f"st-lim-{UID}"      # 1 KiB limit, images only
OTHER = f"st-other-{UID}"  # private bucket without any policy


def _storage_dir(stack: StackHandle) -> Path:
    assert stack.workdir is not None
    return stack.workdir / "supabase" / ".appkit" / "storage"


@pytest.fixture(scope="module")
def admin(stack: StackHandle) -> Any:
    return sync_client(stack, stack.service_role_key)


@pytest.fixture(scope="module")
def anon(stack: StackHandle) -> Any:
    return sync_client(stack, stack.anon_key)


@pytest.fixture(scope="module")
def users(stack: StackHandle) -> Iterator[tuple[User, User]]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        yield create_user(stack, conn), create_user(stack, conn)


@pytest.fixture(scope="module", autouse=True)
def buckets(stack: StackHandle, admin: Any) -> Iterator[None]:
    admin.create_bucket(PUB, options={"public": True})
    admin.create_bucket(PRIV, options={"public": False})
    admin.create_bucket(LIM, options={"file_size_limit": 1024, "allowed_mime_types": ["image/*", "text/csv"]})
    admin.create_bucket(OTHER)
    own = sql.SQL("bucket_id = {b} and (storage.foldername(name))[1] = auth.uid()::text").format(b=sql.Literal(PRIV))
    shared = sql.SQL("bucket_id = {b} and (storage.foldername(name))[1] = 'shared'").format(b=sql.Literal(PRIV))
    names = [f"st_{UID}_{n}" for n in ("sel", "ins", "upd", "del", "shared", "anon", "bsel")]
    stmts = [
        sql.SQL("create policy {n} on storage.objects for select to authenticated using ({c})").format(
            n=sql.Identifier(names[0]), c=own),
        sql.SQL("create policy {n} on storage.objects for insert to authenticated with check ({c})").format(
            n=sql.Identifier(names[1]), c=own),
        sql.SQL("create policy {n} on storage.objects for update to authenticated using ({c}) with check ({c})")
        .format(n=sql.Identifier(names[2]), c=own),
        sql.SQL("create policy {n} on storage.objects for delete to authenticated using ({c})").format(
            n=sql.Identifier(names[3]), c=own),
        sql.SQL("create policy {n} on storage.objects for select to authenticated using ({c})").format(
            n=sql.Identifier(names[4]), c=shared),
        sql.SQL("create policy {n} on storage.objects for select to anon using ({c})").format(
            n=sql.Identifier(names[5]), c=shared),
        sql.SQL("create policy {n} on storage.buckets for select to authenticated using (id = {b})").format(
            n=sql.Identifier(names[6]), b=sql.Literal(PRIV)),
    ]
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for s in stmts:
            conn.execute(s)
    yield
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for n, table in zip(names, ["objects"] * 6 + ["buckets"], strict=True):
            conn.execute(sql.SQL("drop policy if exists {} on storage.{}").format(sql.Identifier(n),
                                                                                 sql.Identifier(table)))
    for b in (PUB, PRIV, LIM, OTHER):
        try:
            admin.empty_bucket(b)
            admin.delete_bucket(b)
        except StorageApiError:
            pass


def _err(exc: pytest.ExceptionInfo[StorageApiError]) -> tuple[str, str, str]:
    return str(exc.value.status), str(exc.value.code), exc.value.message


def _row(stack: StackHandle, bucket: str, name: str) -> dict[str, Any] | None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        cur = conn.execute("select owner::text, owner_id, version, metadata, user_metadata from storage.objects"
                           " where bucket_id = %s and name = %s", (bucket, name))
        row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(["owner", "owner_id", "version", "metadata", "user_metadata"], row, strict=True))


# -- buckets ----------------------------------------------------------------------------------------------

def test_bucket_lifecycle(admin: Any) -> None:
    name = f"st-life-{UID}"
    assert admin.create_bucket(name, options={"public": False, "file_size_limit": 2048,
                                              "allowed_mime_types": ["image/png"]}) == {"name": name}
    b = admin.get_bucket(name)
    assert (b.id, b.name, b.public, b.file_size_limit, b.allowed_mime_types) == (name, name, False, 2048, ["image/png"])
    assert name in [x.id for x in admin.list_buckets()]
    assert admin.update_bucket(name, {"public": True, "file_size_limit": 4096}) == {
        "message": "Successfully updated"}
    b = admin.get_bucket(name)
    assert (b.public, b.file_size_limit, b.allowed_mime_types) == (True, 4096, ["image/png"])
    with pytest.raises(StorageApiError) as exc:
        admin.create_bucket(name)
    assert _err(exc) == ("409", "Duplicate", "The resource already exists")
    admin.from_(name).upload("f.png", b"png", {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as exc:
        admin.delete_bucket(name)
    assert _err(exc)[0] == "409"
    assert admin.empty_bucket(name) == {"message": "Successfully emptied"}
    assert admin.delete_bucket(name) == {"message": "Successfully deleted"}
    with pytest.raises(StorageApiError) as exc:
        admin.get_bucket(name)
    assert _err(exc) == ("404", "Bucket not found", "Bucket not found")
    with pytest.raises(StorageApiError) as exc:
        admin.delete_bucket(name)
    assert _err(exc)[0] == "404"


def test_bucket_bad_input(admin: Any) -> None:
    with pytest.raises(StorageApiError) as exc:
        admin.create_bucket("bad/name")
    assert _err(exc)[0] == "400" and exc.value.message == "Bucket name invalid"
    with pytest.raises(StorageApiError) as exc:
        admin.create_bucket(f"st-bad-{UID}", options={"file_size_limit": "lots"})  # type: ignore[typeddict-item]
    assert _err(exc)[0] == "400"
    with pytest.raises(StorageApiError) as exc:
        admin.create_bucket(f"st-bad-{UID}", options={"allowed_mime_types": ["not a mime"]})
    assert _err(exc)[0] == "400"
    assert f"st-bad-{UID}" not in [b.id for b in admin.list_buckets()]


def test_bucket_rls(stack: StackHandle, anon: Any, users: tuple[User, User]) -> None:
    alice = sync_client(stack, users[0].token)
    ids = [b.id for b in alice.list_buckets()]
    assert PRIV in ids and OTHER not in ids and PUB not in ids
    assert alice.get_bucket(PRIV).id == PRIV
    with pytest.raises(StorageApiError) as exc:
        alice.get_bucket(OTHER)
    assert _err(exc)[0] == "404"
    with pytest.raises(StorageApiError) as exc:
        alice.create_bucket(f"st-user-{UID}")
    assert _err(exc) == ("403", "Unauthorized", "new row violates row-level security policy")
    with pytest.raises(StorageApiError) as exc:
        anon.create_bucket(f"st-anon-{UID}")
    assert _err(exc)[0] == "403"
    with pytest.raises(StorageApiError) as exc:
        alice.delete_bucket(PRIV)
    assert _err(exc)[0] == "404"
    with pytest.raises(StorageApiError) as exc:
        alice.update_bucket(PRIV, {"public": True})
    assert _err(exc)[0] == "404"
    assert PRIV not in [b.id for b in anon.list_buckets()]


def test_invalid_jwt(stack: StackHandle) -> None:
    bad = sync_client(stack, stack.anon_key[:-4] + "AAAA")
    with pytest.raises(StorageApiError) as exc:
        bad.list_buckets()
    assert _err(exc) == ("403", "Unauthorized", "invalid signature")
    expired = jwt.encode({"role": "authenticated", "sub": str(uuid.uuid4()), "exp": int(time.time()) - 10},
                         stack.jwt_secret, algorithm="HS256")
    with pytest.raises(StorageApiError) as exc:
        sync_client(stack, expired).from_(PUB).list()
    assert _err(exc) == ("403", "Unauthorized", "jwt expired")
    # a validly signed JWT naming a role authenticator cannot become is refused by Postgres
    superuser = jwt.encode({"role": "postgres", "exp": int(time.time()) + 60}, stack.jwt_secret, algorithm="HS256")
    with pytest.raises(StorageApiError) as exc:
        sync_client(stack, superuser).list_buckets()
    assert _err(exc)[0] == "403"


# -- objects as service role ---------------------------------------------------------------------------------

def test_upload_download_info_exists(stack: StackHandle, admin: Any) -> None:
    f = admin.from_(PUB)
    res = f.upload("docs/hello.txt", b"hello world", {"content-type": "text/plain", "cache-control": "60",
                                                    "metadata": {"kind": "greeting"}})
    assert res.full_path == f"{PUB}/docs/hello.txt" and res.path == "docs/hello.txt"
    assert f.download("docs/hello.txt") == b"hello world"
    info = f.info("docs/hello.txt")
    assert info["name"] == "docs/hello.txt" and info["size"] == 11 and info["content_type"] == "text/plain"
    assert info["cache_control"] == "max-age=60" and info["metadata"] == {"kind": "greeting"}
    assert f.exists("docs/hello.txt") is True
    f.upload("docs/empty.txt", b"")
    assert f.download("docs/empty.txt") == b"" and f.info("docs/empty.txt")["size"] == 0
    assert f.exists("docs/missing.txt") is False
    with pytest.raises(StorageApiError) as exc:
        f.download("docs/missing.txt")
    assert _err(exc) == ("404", "not_found", "Object not found")
    r = httpx.get(storage_url(stack) + f"object/{PUB}/docs/hello.txt",
                  headers=headers_for(stack, stack.service_role_key))
    assert r.headers["content-type"] == "text/plain" and r.headers["cache-control"] == "max-age=60"
    assert r.headers["etag"] == info["etag"]
    head = httpx.head(storage_url(stack) + f"object/{PUB}/docs/hello.txt",
                      headers=headers_for(stack, stack.service_role_key))
    assert head.status_code == 200 and head.headers["content-length"] == "11"
    assert httpx.head(storage_url(stack) + f"object/{PUB}/docs/nope.txt",
                      headers=headers_for(stack, stack.service_role_key)).status_code == 400


def test_raw_body_upload(stack: StackHandle, admin: Any) -> None:
    url = storage_url(stack) + f"object/{PUB}/raw/data.bin"
    h = {**headers_for(stack, stack.service_role_key), "content-type": "application/x-thing",
         "cache-control": "max-age=5", "x-metadata": "eyJhIjogMX0="}
    r = httpx.post(url, content=b"\x00\x01raw", headers=h)
    assert r.status_code == 200 and r.json()["Key"] == f"{PUB}/raw/data.bin"
    info = admin.from_(PUB).info("raw/data.bin")
    assert info["content_type"] == "application/x-thing" and info["cache_control"] == "max-age=5"
    assert info["metadata"] == {"a": 1}
    assert admin.from_(PUB).download("raw/data.bin") == b"\x00\x01raw"


def test_upsert_and_update_replace_atomically(stack: StackHandle, admin: Any) -> None:
    f = admin.from_(PUB)
    f.upload("up/a.txt", b"v1")
    v1 = _row(stack, PUB, "up/a.txt")
    assert v1 is not None
    with pytest.raises(StorageApiError) as exc:
        f.upload("up/a.txt", b"v2")
    assert _err(exc) == ("409", "Duplicate", "The resource already exists")
    assert f.download("up/a.txt") == b"v1"
    f.upload("up/a.txt", b"v2", {"upsert": "true"})
    assert f.download("up/a.txt") == b"v2"
    v2 = _row(stack, PUB, "up/a.txt")
    assert v2 is not None and v2["version"] != v1["version"]
    objects = _storage_dir(stack) / "objects"
    assert not (objects / v1["version"][:2] / v1["version"]).exists()
    assert (objects / v2["version"][:2] / v2["version"]).exists()
    f.update("up/a.txt", b"v3", {"content-type": "text/markdown"})
    assert f.download("up/a.txt") == b"v3"
    assert f.info("up/a.txt")["content_type"] == "text/markdown"
    assert not (objects / v2["version"][:2] / v2["version"]).exists()


def test_upsert_during_a_download(stack: StackHandle, admin: Any) -> None:
    """A reader sees the old bytes or the new ones, never a mix; an open download finishes intact."""
    f = admin.from_(PUB)
    old, new = b"o" * (6 * 1024 * 1024), b"n" * (6 * 1024 * 1024 + 7)
    f.upload("up/streamed.bin", old)
    url = storage_url(stack) + f"object/{PUB}/up/streamed.bin"
    with httpx.Client(headers=headers_for(stack, stack.service_role_key)) as http, http.stream("GET", url) as resp:
        it = resp.iter_bytes(64 * 1024)
        got = next(it)
        f.upload("up/streamed.bin", new, {"upsert": "true"})
        got += b"".join(it)
    assert got == old
    assert f.download("up/streamed.bin") == new


def test_list_and_list_v2(stack: StackHandle, admin: Any) -> None:
    f = admin.from_(PUB)
    for name in ("ls/b.txt", "ls/a.txt", "ls/c.md", "ls/sub/x.txt", "ls/sub/y.txt", "ls/sub2/z.txt"):
        f.upload(name, name.encode())
    names = [o["name"] for o in f.list("ls")]
    assert names == ["a.txt", "b.txt", "c.md", "sub", "sub2"]
    folder = next(o for o in f.list("ls") if o["name"] == "sub")
    assert folder["id"] is None and folder["metadata"] is None
    assert [o["name"] for o in f.list("ls", {"limit": 2, "offset": 1})] == ["b.txt", "c.md"]
    assert [o["name"] for o in f.list("ls", {"search": "c"})] == ["c.md"]
    desc = [o["name"] for o in f.list("ls", {"sortBy": {"column": "name", "order": "desc"}})]
    assert desc == ["sub2", "sub", "c.md", "b.txt", "a.txt"]
    assert [o["name"] for o in f.list("ls/sub")] == ["x.txt", "y.txt"]
    # v2: cursor pages
    seen: list[str] = []
    cursor = None
    while True:
        opts: dict[str, Any] = {"prefix": "ls/", "limit": 2}
        if cursor:
            opts["cursor"] = cursor
        page = f.list_v2(opts)
        seen += [o.name for o in page.objects]
        if not page.hasNext:
            break
        cursor = page.nextCursor
    assert seen == ["ls/a.txt", "ls/b.txt", "ls/c.md", "ls/sub/x.txt", "ls/sub/y.txt", "ls/sub2/z.txt"]
    page = f.list_v2({"prefix": "ls/", "with_delimiter": True})
    assert [x.name for x in page.folders] == ["ls/sub/", "ls/sub2/"]
    assert [o.name for o in page.objects] == ["ls/a.txt", "ls/b.txt", "ls/c.md"]
    # Supabase Storage's keys (search_v2): the segment at the prefix's depth, no trailing slash
    assert [x.key for x in page.folders] == ["sub", "sub2"]
    assert [o.key for o in page.objects] == ["a.txt", "b.txt", "c.md"]
    assert [x.key for x in f.list_v2({"with_delimiter": True, "prefix": "ls/sub/"}).objects] == ["x.txt", "y.txt"]
    assert "ls" in [x.key for x in f.list_v2({"with_delimiter": True}).folders]
    raw = httpx.post(f"{storage_url(stack)}object/list-v2/{PUB}", json={"prefix": "ls/", "with_delimiter": True},
                     headers=headers_for(stack, stack.service_role_key)).json()
    assert raw["folders"][0] == {"key": "sub", "name": "ls/sub/", "id": None, "updated_at": None,
                                 "created_at": None, "last_accessed_at": None, "metadata": None}
    flat = httpx.post(f"{storage_url(stack)}object/list-v2/{PUB}", json={"prefix": "ls/"},
                      headers=headers_for(stack, stack.service_role_key)).json()
    assert "key" not in flat["objects"][0] and flat["folders"] == []  # no delimiter: the objects' own columns


def test_move_copy_remove(stack: StackHandle, admin: Any) -> None:
    f = admin.from_(PUB)
    f.upload("mv/src.txt", b"payload", {"metadata": {"m": 1}})
    assert f.copy("mv/src.txt", "mv/copy.txt")["Key"] == f"{PUB}/mv/copy.txt"
    assert f.download("mv/copy.txt") == b"payload"
    assert f.info("mv/copy.txt")["metadata"] == {"m": 1}
    assert f.move("mv/copy.txt", "mv/moved.txt") == {"message": "Successfully moved"}
    assert f.exists("mv/copy.txt") is False and f.download("mv/moved.txt") == b"payload"
    with pytest.raises(StorageApiError) as exc:
        f.move("mv/nothing.txt", "mv/x.txt")
    assert _err(exc)[0] == "404"
    with pytest.raises(StorageApiError) as exc:
        f.move("mv/src.txt", "mv/moved.txt")
    assert _err(exc)[0] == "409"
    # across buckets (storage3's copy/move take one bucket: the API's destinationBucket through httpx)
    h = headers_for(stack, stack.service_role_key)
    r = httpx.post(storage_url(stack) + "object/copy", headers=h, json={
        "bucketId": PUB, "sourceKey": "mv/src.txt", "destinationBucket": OTHER, "destinationKey": "in/other.txt"})
    assert r.status_code == 200 and r.json()["Key"] == f"{OTHER}/in/other.txt"
    r = httpx.post(storage_url(stack) + "object/move", headers=h, json={
        "bucketId": PUB, "sourceKey": "mv/moved.txt", "destinationBucket": OTHER, "destinationKey": "in/moved.txt"})
    assert r.status_code == 200
    assert admin.from_(OTHER).download("in/moved.txt") == b"payload"
    assert admin.from_(OTHER).download("in/other.txt") == b"payload"
    removed = f.remove(["mv/src.txt", "mv/never-existed.txt"])
    assert [r["name"] for r in removed] == ["mv/src.txt"]
    assert f.exists("mv/src.txt") is False
    assert admin.from_(OTHER).download("in/other.txt") == b"payload"  # the copy shares nothing mutable


def test_signed_urls(stack: StackHandle, admin: Any) -> None:
    f = admin.from_(OTHER)
    f.upload("sig/file.txt", b"secret bytes")
    signed = f.create_signed_url("sig/file.txt", 60)
    r = httpx.get(signed["signedURL"])
    assert r.status_code == 200 and r.content == b"secret bytes"
    dl = f.create_signed_url("sig/file.txt", 60, {"download": "named.txt"})
    r = httpx.get(dl["signedURL"])
    assert r.headers["content-disposition"] == "attachment; filename=named.txt; filename*=UTF-8''named.txt"
    # Supabase Storage encodes the name as encodeURIComponent does, unquoted, in both parameters
    odd = httpx.get(signed["signedURL"] + "&download=" + quote("résumé (v2) \"final\";.txt"))
    assert odd.headers["content-disposition"] == (
        "attachment; filename=r%C3%A9sum%C3%A9%20(v2)%20%22final%22%3B.txt;"
        " filename*=UTF-8''r%C3%A9sum%C3%A9%20(v2)%20%22final%22%3B.txt")
    many = f.create_signed_urls(["sig/file.txt", "sig/missing.txt"], 60)
    assert many[0]["error"] is None and httpx.get(many[0]["signedURL"]).content == b"secret bytes"
    assert many[1]["signedURL"] is None and many[1]["error"]
    token = signed["signedURL"].split("token=")[1]
    base = storage_url(stack) + f"object/sign/{OTHER}/sig/file.txt?token="
    tampered = httpx.get(base + token[:-3] + "abc")
    assert tampered.status_code == 400 and tampered.json()["message"] == "invalid signature"
    expired = jwt.encode({"url": f"{OTHER}/sig/file.txt", "iat": 1, "exp": int(time.time()) - 5},
                         stack.jwt_secret, algorithm="HS256")
    r = httpx.get(base + expired)
    assert r.status_code == 400 and r.json()["message"] == "jwt expired"
    other = httpx.get(storage_url(stack) + f"object/sign/{OTHER}/sig/other.txt?token={token}")
    assert other.json()["code"] == "InvalidSignature"
    assert httpx.get(storage_url(stack) + f"object/sign/{OTHER}/sig/file.txt").status_code == 400
    with pytest.raises(StorageApiError) as exc:
        f.create_signed_url("sig/missing.txt", 60)
    assert _err(exc)[0] == "404"


def test_signed_upload_url(stack: StackHandle, admin: Any) -> None:
    f = admin.from_(OTHER)
    s = f.create_signed_upload_url("su/new.txt")
    assert s["path"] == "su/new.txt" and s["token"]
    res = f.upload_to_signed_url("su/new.txt", s["token"], b"uploaded with a token", {"content-type": "text/plain"})
    assert res.full_path == f"{OTHER}/su/new.txt"
    assert f.download("su/new.txt") == b"uploaded with a token"
    with pytest.raises(StorageApiError) as exc:
        f.upload_to_signed_url("su/elsewhere.txt", s["token"], b"x")
    assert _err(exc)[1] == "InvalidSignature"
    with pytest.raises(StorageApiError) as exc:
        f.upload_to_signed_url("su/new.txt", s["token"], b"again")  # no upsert in this token
    assert _err(exc)[0] == "409"
    assert f.exists("su/elsewhere.txt") is False


def test_public_urls_range_and_transform(stack: StackHandle, admin: Any) -> None:
    f = admin.from_(PUB)
    f.upload("pub/img.png", b"0123456789", {"content-type": "image/png"})
    url = f.get_public_url("pub/img.png")
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"0123456789"
    r = httpx.get(url, headers={"Range": "bytes=2-5"})
    assert r.status_code == 206 and r.content == b"2345" and r.headers["content-range"] == "bytes 2-5/10"
    assert httpx.get(url, headers={"Range": "bytes=-3"}).content == b"789"
    assert httpx.get(url, headers={"Range": "bytes=50-"}).status_code == 416
    etag = httpx.get(url).headers["etag"]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    r = httpx.get(f.get_public_url("pub/img.png", {"download": True}))
    assert r.headers["content-disposition"] == "attachment;"  # a bare ?download, as Supabase Storage
    transformed = f.get_public_url("pub/img.png", {"transform": {"width": 10, "height": 10}})
    assert "/render/image/public/" in transformed
    assert httpx.get(transformed).content == b"0123456789"  # served as is (documented)
    assert f.download("pub/img.png", {"transform": {"width": 5}}) == b"0123456789"
    # private buckets have no public route
    admin.from_(OTHER).upload("pub/hidden.txt", b"h")
    r = httpx.get(admin.from_(OTHER).get_public_url("pub/hidden.txt"))
    assert r.status_code == 400 and r.json()["statusCode"] == "404"
    # info and HEAD without a JWT: public buckets answer, private ones do not exist
    r = httpx.get(storage_url(stack) + f"object/info/{PUB}/pub/img.png")
    assert r.status_code == 200 and r.json()["size"] == 10
    assert httpx.head(storage_url(stack) + f"object/{PUB}/pub/img.png").status_code == 200
    r = httpx.get(storage_url(stack) + f"object/info/{OTHER}/pub/hidden.txt")
    assert r.json()["statusCode"] == "404" and r.json()["error"] == "Bucket not found"
    assert httpx.head(storage_url(stack) + f"object/{OTHER}/pub/hidden.txt").status_code == 400


# -- bad input: nothing written ---------------------------------------------------------------------------

def _no_temp_files(stack: StackHandle) -> bool:
    return not any((_storage_dir(stack) / "tmp").iterdir())


def test_upload_errors_write_nothing(stack: StackHandle, admin: Any) -> None:
    with pytest.raises(StorageApiError) as exc:
        admin.from_(f"st-nobucket-{UID}").upload("a.txt", b"x")
    assert _err(exc) == ("404", "Bucket not found", "Bucket not found")
    lim = admin.from_(LIM)
    with pytest.raises(StorageApiError) as exc:
        lim.upload("big.png", b"x" * 2048, {"content-type": "image/png"})
    assert _err(exc) == ("413", "Payload too large", "The object exceeded the maximum allowed size")
    with pytest.raises(StorageApiError) as exc:
        lim.upload("doc.txt", b"x", {"content-type": "text/plain"})
    assert _err(exc) == ("415", "invalid_mime_type", "mime type text/plain is not supported")
    assert lim.upload("ok.png", b"x" * 1024, {"content-type": "image/png"}).path == "ok.png"
    assert lim.upload("ok.csv", b"a,b", {"content-type": "text/csv"}).path == "ok.csv"
    h = headers_for(stack, stack.service_role_key)
    r = httpx.post(storage_url(stack) + f"object/{LIM}/raw.png", content=b"y" * 4096,
                   headers={**h, "content-type": "image/png"})
    assert r.status_code == 400 and r.json()["statusCode"] == "413"
    bad_multipart = (b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                     b"Content-Type: image/png\r\n\r\ntruncated without closing delimiter")
    r = httpx.post(storage_url(stack) + f"object/{LIM}/mp.png", content=bad_multipart,
                   headers={**h, "content-type": "multipart/form-data; boundary=XYZ"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidRequest"
    r = httpx.post(storage_url(stack) + f"object/{LIM}/mp2.png", content=b"garbage",
                   headers={**h, "content-type": "multipart/form-data"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidRequest"
    endless_preamble = b"x" * (2 * 1024 * 1024) + bad_multipart
    r = httpx.post(storage_url(stack) + f"object/{LIM}/mp3.png", content=endless_preamble,
                   headers={**h, "content-type": "multipart/form-data; boundary=XYZ"})
    assert r.status_code == 400 and r.json()["statusCode"] == "413"
    r = httpx.post(storage_url(stack) + f"object/list/{PUB}", content=b"{not json", headers=h)
    assert r.status_code == 400 and r.json()["statusCode"] == "400"
    r = httpx.post(storage_url(stack) + f"object/{PUB}/badtype.bin", content=b"x",
                   headers={**h, "content-type": b"text/pl\xe4in"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidRequest"
    with pytest.raises(StorageApiError) as exc:
        admin.from_(PUB).upload("badcache.txt", b"x", {"cache-control": "caf\u00e9\r\nX-Evil: 1"})
    assert _err(exc)[0] == "400"
    with pytest.raises(StorageApiError) as exc:  # metadata that is not JSON: 400, no temp file left
        admin.from_(PUB).upload("badmeta.txt", b"x", {"headers": {"x-metadata": "bm90IGpzb24="}})
    assert _err(exc)[0] == "400"
    bad_meta_form = (b"--B\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{nope\r\n"
                     b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\ndata\r\n--B--\r\n")
    r = httpx.post(storage_url(stack) + f"object/{PUB}/badmeta2.txt", content=bad_meta_form,
                   headers={**h, "content-type": "multipart/form-data; boundary=B"})
    assert r.status_code == 400 and r.json()["message"] == "metadata must be a JSON object"
    for bucket, name in ((PUB, "badtype.bin"), (PUB, "badcache.txt"), (PUB, "badmeta.txt"), (PUB, "badmeta2.txt")):
        assert _row(stack, bucket, name) is None
    for name in ("big.png", "doc.txt", "raw.png", "mp.png", "mp2.png", "mp3.png"):
        assert _row(stack, LIM, name) is None
    assert _no_temp_files(stack)


BAD_KEYS = [
    ("dotdot", "..%2Fescape.txt"),
    ("dotdot-encoded", "%2e%2e/escape.txt"),
    ("nested-dotdot", "a/%2E%2E/%2e%2e/escape.txt"),
    ("double-encoded", "%252e%252e/escape.txt"),
    ("dot", "a/%2e/b.txt"),
    ("absolute", "%2Fetc/passwd"),
    ("backslash", "a%5C..%5Cescape.txt"),
    ("nul", "a%00b.txt"),
    ("encoded-slash-dotdot", "a%2F..%2F..%2Fescape.txt"),
    ("empty-segment", "a//b.txt"),
]


@pytest.mark.parametrize(("label", "raw"), BAD_KEYS, ids=[b[0] for b in BAD_KEYS])
def test_keys_cannot_escape(stack: StackHandle, admin: Any, label: str, raw: str) -> None:
    h = headers_for(stack, stack.service_role_key)
    base = storage_url(stack)
    before = sorted(p.name for p in (_storage_dir(stack)).rglob("*"))
    for method, path in [("POST", f"object/{PUB}/{raw}"), ("PUT", f"object/{PUB}/{raw}"),
                         ("GET", f"object/{PUB}/{raw}"), ("GET", f"object/info/{PUB}/{raw}"),
                         ("GET", f"object/public/{PUB}/{raw}"), ("POST", f"object/sign/{PUB}/{raw}"),
                         ("POST", f"object/upload/sign/{PUB}/{raw}"), ("DELETE", f"object/{PUB}/{raw}")]:
        r = httpx.request(method, base + path, headers={**h, "content-type": "text/plain"},
                          content=b'{"expiresIn": 60}' if "sign" in path else b"evil")
        assert r.status_code == 400, (method, path, r.text)
        assert r.json()["code"] == "InvalidKey", (method, path, r.text)
    decoded = httpx.URL("http://x/" + raw).path  # what the server sees, for the JSON-bodied routes
    key = __import__("urllib.parse").parse.unquote(decoded[1:])
    for route in ("object/move", "object/copy"):
        r = httpx.post(base + route, headers=h, json={"bucketId": PUB, "sourceKey": "docs/hello.txt",
                                                      "destinationKey": key})
        assert r.status_code == 400 and r.json()["code"] == "InvalidKey", (route, r.text)
    after = sorted(p.name for p in (_storage_dir(stack)).rglob("*"))
    assert before == after
    assert not list(_storage_dir(stack).parent.glob("escape*")) and not list(
        _storage_dir(stack).parent.parent.glob("escape*"))


# -- RLS: two users, anon, service role ------------------------------------------------------------------

def test_rls_two_users(stack: StackHandle, anon: Any, admin: Any, users: tuple[User, User]) -> None:
    alice_u, bob_u = users
    alice, bob = sync_client(stack, alice_u.token).from_(PRIV), sync_client(stack, bob_u.token).from_(PRIV)
    alice.upload(f"{alice_u.id}/notes.txt", b"alice's")
    row = _row(stack, PRIV, f"{alice_u.id}/notes.txt")
    assert row is not None and row["owner"] == alice_u.id and row["owner_id"] == alice_u.id
    bob.upload(f"{bob_u.id}/notes.txt", b"bob's")
    admin.from_(PRIV).upload("shared/readme.txt", b"for everyone")
    # writing into someone else's folder is denied, and nothing is written
    with pytest.raises(StorageApiError) as exc:
        alice.upload(f"{bob_u.id}/intrusion.txt", b"x")
    assert _err(exc) == ("403", "Unauthorized", "new row violates row-level security policy")
    assert _row(stack, PRIV, f"{bob_u.id}/intrusion.txt") is None
    # reading: own folder and the shared folder only
    assert alice.download(f"{alice_u.id}/notes.txt") == b"alice's"
    assert bob.download("shared/readme.txt") == b"for everyone"
    with pytest.raises(StorageApiError) as exc:
        bob.download(f"{alice_u.id}/notes.txt")
    assert _err(exc) == ("404", "not_found", "Object not found")
    assert bob.exists(f"{alice_u.id}/notes.txt") is False
    assert sorted(o["name"] for o in bob.list()) == sorted([bob_u.id, "shared"])
    assert [o["name"] for o in alice.list(alice_u.id)] == ["notes.txt"]
    assert bob.list(alice_u.id) == []
    # deleting / moving / signing someone else's object affects nothing
    assert bob.remove([f"{alice_u.id}/notes.txt"]) == []
    with pytest.raises(StorageApiError):
        bob.move(f"{alice_u.id}/notes.txt", f"{bob_u.id}/stolen.txt")
    with pytest.raises(StorageApiError) as exc:
        bob.create_signed_url(f"{alice_u.id}/notes.txt", 60)
    assert _err(exc)[0] == "404"
    with pytest.raises(StorageApiError) as exc:
        bob.copy(f"{alice_u.id}/notes.txt", f"{bob_u.id}/copied.txt")
    assert _err(exc)[0] == "404"
    assert alice.download(f"{alice_u.id}/notes.txt") == b"alice's"
    # moving out of one's own folder into another's is denied by the update policy's WITH CHECK
    with pytest.raises(StorageApiError) as exc:
        alice.move(f"{alice_u.id}/notes.txt", f"{bob_u.id}/gift.txt")
    assert _err(exc)[0] == "403"
    # own-folder operations work: upsert (needs select+update), move, copy, sign, remove
    alice.upload(f"{alice_u.id}/notes.txt", b"alice v2", {"upsert": "true"})
    assert alice.download(f"{alice_u.id}/notes.txt") == b"alice v2"
    alice.copy(f"{alice_u.id}/notes.txt", f"{alice_u.id}/copy.txt")
    alice.move(f"{alice_u.id}/copy.txt", f"{alice_u.id}/renamed.txt")
    assert httpx.get(alice.create_signed_url(f"{alice_u.id}/renamed.txt", 30)["signedURL"]).content == b"alice v2"
    assert [r["name"] for r in alice.remove([f"{alice_u.id}/renamed.txt"])] == [f"{alice_u.id}/renamed.txt"]
    # signed upload URLs are checked when signed, and carry the owner
    with pytest.raises(StorageApiError) as exc:
        alice.create_signed_upload_url(f"{bob_u.id}/via-token.txt")
    assert _err(exc)[0] == "403"
    s = alice.create_signed_upload_url(f"{alice_u.id}/via-token.txt")
    alice.upload_to_signed_url(f"{alice_u.id}/via-token.txt", s["token"], b"token upload")
    row = _row(stack, PRIV, f"{alice_u.id}/via-token.txt")
    assert row is not None and row["owner_id"] == alice_u.id
    # anon (the anon key): only what the anon policy shows, nothing writable
    with pytest.raises(StorageApiError) as exc:
        anon.from_(PRIV).upload("anon.txt", b"x")
    assert _err(exc)[0] == "403"
    assert [o["name"] for o in anon.from_(PRIV).list()] == ["shared"]
    assert anon.from_(PRIV).download("shared/readme.txt") == b"for everyone"
    with pytest.raises(StorageApiError) as exc:
        anon.from_(PRIV).download(f"{alice_u.id}/notes.txt")
    assert _err(exc)[0] == "404"
    # the service role bypasses RLS
    names = {o["name"] for o in admin.from_(PRIV).list()}
    assert {alice_u.id, bob_u.id, "shared"} <= names
    assert admin.from_(PRIV).download(f"{alice_u.id}/notes.txt") == b"alice v2"


async def test_async_client_as_user(stack: StackHandle, users: tuple[User, User]) -> None:
    alice_u, bob_u = users
    async with async_client(stack, alice_u.token) as client:
        f = client.from_(PRIV)
        key = f"{alice_u.id}/async/data.json"
        res = await f.upload(key, b'{"a": 1}', {"content-type": "application/json", "metadata": {"v": 2}})
        assert res.full_path == f"{PRIV}/{key}"
        assert await f.download(key) == b'{"a": 1}'
        assert (await f.info(key))["metadata"] == {"v": 2}
        assert await f.exists(key) is True
        assert [o["name"] for o in await f.list(f"{alice_u.id}/async")] == ["data.json"]
        page = await f.list_v2({"prefix": f"{alice_u.id}/async/"})
        assert [o.name for o in page.objects] == [key]
        signed = await f.create_signed_url(key, 60)
        assert httpx.get(signed["signedURL"]).content == b'{"a": 1}'
        await f.update(key, b'{"a": 2}', {"content-type": "application/json"})
        await f.copy(key, f"{alice_u.id}/async/copy.json")
        await f.move(f"{alice_u.id}/async/copy.json", f"{alice_u.id}/async/moved.json")
        assert await f.download(f"{alice_u.id}/async/moved.json") == b'{"a": 2}'
        with pytest.raises(StorageApiError) as exc:
            await f.upload(f"{bob_u.id}/async.txt", b"x")
        assert str(exc.value.status) == "403"
        many = await f.create_signed_urls([key, f"{bob_u.id}/notes.txt"], 60)
        assert many[0]["signedURL"] and many[1]["signedURL"] is None
        su = await f.create_signed_upload_url(f"{alice_u.id}/async/signed.txt")
        await f.upload_to_signed_url(f"{alice_u.id}/async/signed.txt", su["token"], b"signed async")
        assert await f.download(f"{alice_u.id}/async/signed.txt") == b"signed async"
        public_url = await f.get_public_url(key)
        assert httpx.get(public_url).json()["error"] == "Bucket not found"  # PRIV is private
        removed = await f.remove([key, f"{alice_u.id}/async/moved.json", f"{alice_u.id}/async/signed.txt"])
        assert len(removed) == 3
        assert [b.id for b in await client.list_buckets()] == [PRIV] or PRIV in [
            b.id for b in await client.list_buckets()]
    async with async_client(stack, stack.service_role_key) as admin_client:
        name = f"st-async-{UID}"
        await admin_client.create_bucket(name, options={"public": True})
        assert (await admin_client.get_bucket(name)).public is True
        await admin_client.update_bucket(name, {"public": False})
        await admin_client.from_(name).upload("x.txt", b"x")
        await admin_client.empty_bucket(name)
        await admin_client.delete_bucket(name)


def test_through_supabase_py(stack: StackHandle) -> None:
    """The top-level supabase-py client reaches the same service (its storage is storage3)."""
    import warnings

    from supabase import create_client

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # supabase-py passes storage3's deprecated args
        client = create_client(stack.api_url, stack.service_role_key)
        storage = client.storage
    bucket = storage.from_(PUB)
    bucket.upload("via-supabase-py.txt", b"hello from supabase-py", {"content-type": "text/plain"})
    assert bucket.download("via-supabase-py.txt") == b"hello from supabase-py"
    assert PUB in [b.id for b in storage.list_buckets()]
    assert httpx.get(bucket.get_public_url("via-supabase-py.txt")).content == b"hello from supabase-py"
