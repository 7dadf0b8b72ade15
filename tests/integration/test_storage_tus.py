"""TUS resumable uploads at /storage/v1/upload/resumable, driven with httpx (and a raw socket to drop a PATCH)."""

from __future__ import annotations

import base64
import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.storage_support import User, create_user, headers_for, storage_url, sync_client
from tests.support import StackHandle

pytestmark = pytest.mark.integration

UID = uuid.uuid4().hex[:8]
BUCKET = f"st-tus-{UID}"
SMALL = f"st-tus-small-{UID}"


@pytest.fixture(scope="module")
def users(stack: StackHandle) -> Iterator[tuple[User, User]]:
    admin = sync_client(stack, stack.service_role_key)
    admin.create_bucket(BUCKET)
    admin.create_bucket(SMALL, options={"file_size_limit": 100, "allowed_mime_types": ["text/plain"]})
    own = sql.SQL("bucket_id = {b} and (storage.foldername(name))[1] = auth.uid()::text").format(b=sql.Literal(BUCKET))
    policies = [f"tus_{UID}_{n}" for n in ("sel", "ins", "upd")]
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create policy {} on storage.objects for select to authenticated using ({})").format(
            sql.Identifier(policies[0]), own))
        conn.execute(sql.SQL("create policy {} on storage.objects for insert to authenticated with check ({})")
                     .format(sql.Identifier(policies[1]), own))
        conn.execute(sql.SQL("create policy {} on storage.objects for update to authenticated using ({})")
                     .format(sql.Identifier(policies[2]), own))
        pair = create_user(stack, conn), create_user(stack, conn)
    yield pair
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for p in policies:
            conn.execute(sql.SQL("drop policy if exists {} on storage.objects").format(sql.Identifier(p)))
    for b in (BUCKET, SMALL):
        admin.empty_bucket(b)
        admin.delete_bucket(b)


def _meta(**items: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in items.items())


def _create(stack: StackHandle, token: str, length: int, bucket: str, name: str, **extra: str) -> httpx.Response:
    headers = {**headers_for(stack, token), "Tus-Resumable": "1.0.0", "Upload-Length": str(length),
               "Upload-Metadata": _meta(bucketName=bucket, objectName=name, contentType=extra.pop("ct", "text/plain"),
                                        cacheControl="3600"), **extra}
    return httpx.post(storage_url(stack) + "upload/resumable", headers=headers)


def _patch(stack: StackHandle, token: str, location: str, offset: int, data: bytes) -> httpx.Response:
    return httpx.patch(location, content=data, headers={
        **headers_for(stack, token), "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream"})


def _head(stack: StackHandle, token: str, location: str) -> httpx.Response:
    return httpx.head(location, headers={**headers_for(stack, token), "Tus-Resumable": "1.0.0"})


def _dropped_patch(stack: StackHandle, token: str, location: str, offset: int, data: bytes, send: int) -> None:
    """Start a PATCH announcing all of ``data`` but send only ``send`` bytes, then drop the connection."""
    parts = urlsplit(location)
    head = (f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"apikey: {stack.anon_key}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as s:
        s.sendall(head + data[:send])
        time.sleep(0.2)


def test_options(stack: StackHandle) -> None:
    r = httpx.options(storage_url(stack) + "upload/resumable")
    assert r.status_code == 204 and r.headers["tus-version"] == "1.0.0"
    assert "creation" in r.headers["tus-extension"]


def test_resumable_upload_survives_a_dropped_connection(stack: StackHandle, users: tuple[User, User]) -> None:
    alice, bob = users
    data = os.urandom(3 * 1024 * 1024 + 123)
    name = f"{alice.id}/big/video.bin"
    r = _create(stack, alice.token, len(data), BUCKET, name, ct="application/octet-stream")
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert location.startswith(stack.api_url + "/storage/v1/upload/resumable/")
    first = 1024 * 1024
    r = _patch(stack, alice.token, location, 0, data[:first])
    assert r.status_code == 204 and r.headers["upload-offset"] == str(first)
    # another user cannot write into alice's upload
    assert _patch(stack, bob.token, location, first, data[first:first + 10]).status_code == 403
    # a PATCH that dies half way: what arrived is kept
    sent = 700 * 1024
    _dropped_patch(stack, alice.token, location, first, data[first:], sent)
    deadline = time.monotonic() + 15
    offset = -1
    while time.monotonic() < deadline:
        h = _head(stack, alice.token, location)
        assert h.status_code == 200 and h.headers["upload-length"] == str(len(data))
        assert h.headers["cache-control"] == "no-store"
        offset = int(h.headers["upload-offset"])
        if offset == first + sent:
            break
        time.sleep(0.05)
    assert offset == first + sent
    assert _head(stack, bob.token, location).status_code == 403  # only the uploader may look
    # a PATCH at the wrong offset is refused
    assert _patch(stack, alice.token, location, first, data[first:]).status_code == 409
    # resume from HEAD's offset
    r = _patch(stack, alice.token, location, offset, data[offset:])
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(data))
    client = sync_client(stack, alice.token).from_(BUCKET)
    assert client.download(name) == data
    info = client.info(name)
    assert info["size"] == len(data) and info["content_type"] == "application/octet-stream"
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("select owner_id from storage.objects where bucket_id = %s and name = %s",
                           (BUCKET, name)).fetchone()
    assert row == (alice.id,)
    assert _head(stack, alice.token, location).status_code == 404  # finished uploads are gone


def test_creation_with_upload_and_termination(stack: StackHandle, users: tuple[User, User]) -> None:
    alice, _ = users
    name = f"{alice.id}/small.txt"
    headers = {**headers_for(stack, alice.token), "Tus-Resumable": "1.0.0", "Upload-Length": "5",
               "Upload-Metadata": _meta(bucketName=BUCKET, objectName=name), "x-upsert": "true",
               "Content-Type": "application/offset+octet-stream"}
    r = httpx.post(storage_url(stack) + "upload/resumable", headers=headers, content=b"hello")
    assert r.status_code == 201 and r.headers["upload-offset"] == "5"
    assert sync_client(stack, alice.token).from_(BUCKET).download(name) == b"hello"
    r = _create(stack, alice.token, 10, BUCKET, f"{alice.id}/cancelled.txt")
    location = r.headers["location"]
    d = httpx.delete(location, headers={**headers_for(stack, alice.token), "Tus-Resumable": "1.0.0"})
    assert d.status_code == 204
    assert _head(stack, alice.token, location).status_code == 404


def test_tus_errors(stack: StackHandle, users: tuple[User, User]) -> None:
    alice, bob = users
    r = _create(stack, alice.token, 10, BUCKET, f"{bob.id}/not-mine.txt")
    assert r.status_code == 403 and r.json()["message"] == "new row violates row-level security policy"
    r = _create(stack, alice.token, 10, f"st-tus-none-{UID}", "x.txt")
    assert r.status_code == 404 and r.json()["error"] == "Bucket not found"
    r = _create(stack, stack.service_role_key, 1000, SMALL, "too-big.txt")
    assert r.status_code == 413
    r = _create(stack, stack.service_role_key, 10, SMALL, "img.png", ct="image/png")
    assert r.status_code == 415
    r = _create(stack, stack.service_role_key, 10, SMALL, "../escape.txt")
    assert r.status_code == 400 and r.json()["code"] == "InvalidKey"
    r = httpx.post(storage_url(stack) + "upload/resumable",
                   headers={**headers_for(stack, alice.token), "Tus-Resumable": "1.0.0"})
    assert r.status_code == 400
    r = _create(stack, stack.service_role_key, 10, SMALL, "exact.txt")
    location = r.headers["location"]
    assert _patch(stack, stack.service_role_key, location, 0, b"x" * 11).status_code == 413
    assert _head(stack, stack.service_role_key, location).headers["upload-offset"] == "0"
    bad = location.rsplit("/", 1)[0] + "/" + "0" * 32
    assert _head(stack, stack.service_role_key, bad).status_code == 404
    assert _head(stack, stack.service_role_key, location.rsplit("/", 1)[0] + "/..%2F..%2Fx").status_code == 404
    with psycopg.connect(stack.db_url) as conn:
        n = conn.execute("select count(*) from storage.objects where bucket_id = %s", (SMALL,)).fetchone()
    assert n == (0,)



def test_signed_resumable_upload(stack: StackHandle, users: tuple[User, User]) -> None:
    alice, _ = users
    name = f"{alice.id}/signed-tus.bin"
    token = sync_client(stack, alice.token).from_(BUCKET).create_signed_upload_url(name)["token"]
    data = os.urandom(300_000)
    base_headers = {"apikey": stack.anon_key, "Tus-Resumable": "1.0.0", "x-signature": token}
    r = httpx.post(storage_url(stack) + "upload/resumable/sign", headers={
        **base_headers, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(bucketName=BUCKET, objectName=name)})
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert "/upload/resumable/sign/" in location
    other = httpx.post(storage_url(stack) + "upload/resumable/sign", headers={
        **base_headers, "Upload-Length": "3", "Upload-Metadata": _meta(bucketName=BUCKET, objectName=f"{name}.x")})
    assert other.status_code == 400 and other.json()["code"] == "InvalidSignature"
    unsigned_route = location.replace("/upload/resumable/sign/", "/upload/resumable/")
    assert _patch(stack, alice.token, unsigned_route, 0, data).status_code == 404
    patch_headers = {**base_headers, "Content-Type": "application/offset+octet-stream"}
    r = httpx.patch(location, content=data[:100_000], headers={**patch_headers, "Upload-Offset": "0"})
    assert r.status_code == 204 and r.headers["upload-offset"] == "100000"
    bad = httpx.patch(location, content=data[100_000:], headers={
        **patch_headers, "Upload-Offset": "100000", "x-signature": token[:-2] + "xx"})
    assert bad.status_code == 400
    head = httpx.head(location, headers=base_headers)
    assert head.status_code == 200 and head.headers["upload-offset"] == "100000"
    assert httpx.head(location, headers={**base_headers, "x-signature": "nope"}).status_code == 400
    r = httpx.patch(location, content=data[100_000:], headers={**patch_headers, "Upload-Offset": "100000"})
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(data))
    assert sync_client(stack, alice.token).from_(BUCKET).download(name) == data
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("select owner_id from storage.objects where bucket_id = %s and name = %s",
                           (BUCKET, name)).fetchone()
    assert row == (alice.id,)
