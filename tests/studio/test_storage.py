"""Server-side tests of the studio's Storage page: buckets, folders, upload (small and resumable), download,
move, delete, signed links; bad input is a 4xx page and every form needs the CSRF token."""

from __future__ import annotations

import os
import re
import uuid

import httpx
import pytest

from appkit import AppKit
from tests.studio.pages_support import assert_no_5xx, csrf, flash, studio_client
from tests.support import StackHandle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin(stack: StackHandle) -> AppKit:
    return AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key).admin


def _bucket() -> str:
    return f"studio-{uuid.uuid4().hex[:8]}"


def test_bucket_create_settings_empty_delete(stack: StackHandle, admin: AppKit) -> None:
    name = _bucket()
    with studio_client(stack) as client:
        token = csrf(client, "/storage")
        r = client.post("/storage", data={"csrf_token": token, "name": name, "file_size_limit": "1048576",
                                          "allowed_mime_types": "image/png, text/plain"})
        assert r.headers["location"].startswith(f"/storage/{name}/") and "created" in flash(r)
        bucket = admin.files.get_bucket(name)
        assert not bucket.public and bucket.file_size_limit == 1048576
        assert bucket.allowed_mime_types == ["image/png", "text/plain"]
        assert f'href="/storage/{name}/"' in client.get("/storage").text
        r = client.post(f"/storage/{name}/-/settings", data={"csrf_token": token, "public": "on",
                                                             "file_size_limit": "0", "allowed_mime_types": ""})
        assert "saved" in flash(r)
        assert admin.files.get_bucket(name).public
        admin.files.upload(name, "a/b.txt", b"x")
        r = client.post(f"/storage/{name}/-/empty", data={"csrf_token": token})
        assert "emptied" in flash(r)
        assert admin.files.list(name, "a") == []
        r = client.post(f"/storage/{name}/-/delete", data={"csrf_token": token})
        assert "deleted" in flash(r)
        assert name not in [b.name for b in admin.files.list_buckets()]


def test_folders_upload_download_move_sign_delete(stack: StackHandle, admin: AppKit) -> None:
    name = _bucket()
    admin.files.create_bucket(name)
    payload = os.urandom(200_000)
    with studio_client(stack) as client:
        token = csrf(client, "/storage")
        r = client.post(f"/storage/{name}/-/folder", data={"csrf_token": token, "prefix": "", "name": "docs"})
        assert r.headers["location"].split("?")[0] == f"/storage/{name}/docs/"
        root = client.get(f"/storage/{name}/")
        assert f'href="/storage/{name}/docs/"' in root.text
        r = client.post(f"/storage/{name}/-/upload", data={"csrf_token": token, "prefix": "docs/"},
                        files={"file": ("report 1.bin", payload, "application/octet-stream")})
        assert "Uploaded report 1.bin" in flash(r)
        folder = client.get(f"/storage/{name}/docs/")
        assert "report%201.bin" in folder.text and ".emptyFolderPlaceholder" not in folder.text
        page = client.get(f"/storage/{name}/docs/report%201.bin")
        assert page.status_code == 200 and "200000 bytes" in page.text
        download = client.get(f"/storage/{name}/docs/report%201.bin?download=1")
        assert download.status_code == 200 and download.content == payload
        assert "attachment" in download.headers["content-disposition"]
        r = client.post(f"/storage/{name}/-/sign", data={"csrf_token": token, "path": "docs/report 1.bin",
                                                          "expires_in": "60"})
        assert r.status_code == 200
        signed = re.search(r'id="signed-url">([^<]+)<', r.text)
        assert signed
        assert httpx.get(signed.group(1).replace("&amp;", "&")).content == payload
        r = client.post(f"/storage/{name}/-/move", data={"csrf_token": token, "path": "docs/report 1.bin",
                                                          "destination": "archive/report.bin"})
        assert r.headers["location"].split("?")[0] == f"/storage/{name}/archive/report.bin"
        assert admin.files.download(name, "archive/report.bin") == payload
        assert client.get(f"/storage/{name}/docs/report%201.bin").status_code == 404
        r = client.post(f"/storage/{name}/-/remove", data={"csrf_token": token, "path": "archive/report.bin"})
        assert "Deleted" in flash(r)
        assert client.get(f"/storage/{name}/archive/report.bin?download=1").status_code == 404


def test_large_upload_goes_on_resumable(stack: StackHandle, admin: AppKit) -> None:
    name = _bucket()
    admin.files.create_bucket(name)
    payload = os.urandom(7 * 1024 * 1024 + 123)  # over the 6 MB chunk: TUS on to the project
    with studio_client(stack) as client:
        token = csrf(client, "/storage")
        r = client.post(f"/storage/{name}/-/upload", data={"csrf_token": token},
                        files={"file": ("big.bin", payload, "application/octet-stream")})
        assert "Uploaded" in flash(r)
        assert client.get(f"/storage/{name}/big.bin?download=1").content == payload


def test_bad_input_is_4xx(stack: StackHandle, admin: AppKit) -> None:
    name = _bucket()
    admin.files.create_bucket(name)
    with studio_client(stack) as client:
        paths = [f"/storage/{name}/a/../b", f"/storage/{name}/a//b", f"/storage/no-such-bucket-{name}/",
                 f"/storage/{name}/missing.txt", f"/storage/{name}/missing.txt?download=1", f"/storage/{name}/?offset=x",
                 f"/storage/{name}/?offset=-1", f"/storage/{name}/%00/"]
        statuses = assert_no_5xx(client, paths)
        assert all(400 <= s < 500 for s in statuses.values()), statuses
        token = csrf(client, "/storage")
        cases = [
            ("/storage", {"name": ""}, 400),
            ("/storage", {"name": name}, 409),
            ("/storage", {"name": "x", "file_size_limit": "big"}, 400),
            (f"/storage/{name}/-/upload", {}, 400),
            (f"/storage/{name}/-/folder", {"name": ".."}, 400),
            (f"/storage/{name}/-/move", {"path": "nope.txt", "destination": "b.txt"}, 404),
            (f"/storage/{name}/-/move", {"path": "a", "destination": "../x"}, 400),
            (f"/storage/{name}/-/remove", {"path": "nope.txt"}, 404),
            (f"/storage/{name}/-/sign", {"path": "nope.txt", "expires_in": "0"}, 400),
        ]
        got = [client.post(p, data={"csrf_token": token, **d}).status_code for p, d, _ in cases]
        assert got == [s for _, _, s in cases]
        # a 5xx never hides behind an upload to a bucket that is missing
        r = client.post(f"/storage/no-such-{name}/-/upload", data={"csrf_token": token},
                        files={"file": ("a.txt", b"a", "text/plain")})
        assert 400 <= r.status_code < 500


def test_state_changes_need_the_csrf_token(stack: StackHandle, admin: AppKit) -> None:
    name = _bucket()
    admin.files.create_bucket(name)
    admin.files.upload(name, "keep.txt", b"keep")
    with studio_client(stack) as client:
        csrf(client, "/storage")
        for path, data in [("/storage", {"name": _bucket()}), (f"/storage/{name}/-/remove", {"path": "keep.txt"}),
                           (f"/storage/{name}/-/delete", {}), (f"/storage/{name}/-/empty", {})]:
            assert client.post(path, data=data).status_code == 403, path
        r = client.post(f"/storage/{name}/-/upload", files={"file": ("x.txt", b"x", "text/plain")})
        assert r.status_code == 403
    assert admin.files.download(name, "keep.txt") == b"keep"
    assert [e.name for e in admin.files.list(name)] == ["keep.txt"]


def test_chunked_upload_resumes_and_stores_the_object(stack: StackHandle, admin: AppKit) -> None:
    name = _bucket()
    admin.files.create_bucket(name)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    upload_id = uuid.uuid4().hex
    base = f"/storage/{name}/-/chunks?id={upload_id}&total={len(payload)}&path=big/data.bin"
    with studio_client(stack) as client:
        token = csrf(client, "/storage")
        headers = {"X-CSRF-Token": token, "Content-Type": "application/octet-stream"}
        assert client.get(base).json() == {"offset": 0}
        r = client.post(base + "&offset=0", content=payload[:1_000_000], headers=headers)
        assert r.status_code == 200 and r.json() == {"offset": 1_000_000}
        # a client that lost the answer resends from 0: told where the server is
        r = client.post(base + "&offset=0", content=payload[:1_000_000], headers=headers)
        assert r.status_code == 409 and r.json()["offset"] == 1_000_000
        assert client.get(base).json() == {"offset": 1_000_000}
        r = client.post(base + "&offset=1000000", content=payload[1_000_000:2_500_000], headers=headers)
        assert r.json() == {"offset": 2_500_000}
        r = client.post(base + "&offset=2500000", content=payload[2_500_000:], headers=headers)
        assert r.status_code == 201 and r.json()["done"] is True
        assert r.headers["location"] == f"/storage/{name}/big/data.bin"
        assert admin.files.download(name, "big/data.bin") == payload
        assert client.get(base).json() == {"offset": 0}  # the partial file is gone


def test_chunked_upload_bad_input(stack: StackHandle, admin: AppKit) -> None:
    name = _bucket()
    admin.files.create_bucket(name)
    upload_id = uuid.uuid4().hex
    with studio_client(stack) as client:
        token = csrf(client, "/storage")
        headers = {"X-CSRF-Token": token, "Content-Type": "application/octet-stream"}
        ok = f"/storage/{name}/-/chunks?id={upload_id}&total=10&path=a.bin&offset=0"
        cases = {
            f"/storage/{name}/-/chunks?id=../../etc&total=10&path=a.bin&offset=0": 400,
            f"/storage/{name}/-/chunks?id={upload_id}&total=x&path=a.bin&offset=0": 400,
            f"/storage/{name}/-/chunks?id={upload_id}&total=10&path=a.bin": 400,
            f"/storage/{name}/-/chunks?id={upload_id}&total=10&path=../a.bin&offset=0": 400,
            f"/storage/{name}/-/chunks?id={upload_id}&total=4&path=a.bin&offset=0": 400,  # past the total
        }
        got = {p: client.post(p, content=b"0123456789", headers=headers).status_code for p in cases}
        assert got == cases
        assert client.get(f"/storage/{name}/-/chunks?id=nope").status_code == 400
        assert client.post(ok, content=b"0123456789",
                           headers={"Content-Type": "application/octet-stream"}).status_code == 403
        assert client.post(ok, content=b"x" * (8 * 1024 * 1024 + 1), headers=headers).status_code == 413
        # a bucket that does not exist: the last chunk's store fails with a 4xx, and nothing is left behind
        missing = f"/storage/no-such-{name}/-/chunks?id={uuid.uuid4().hex}&total=3&path=a.bin&offset=0"
        assert 400 <= client.post(missing, content=b"abc", headers=headers).status_code < 500
    assert admin.files.list(name) == []
