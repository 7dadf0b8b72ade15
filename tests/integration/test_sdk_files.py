"""Files through the SDK against the local stack: per-user folders enforced by storage RLS."""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from appkit import AppKit, errors
from tests.sdk_support import app, require, signed_up
from tests.support import StackHandle

__all__ = ["app"]
pytestmark = pytest.mark.integration

POLICIES = """
drop policy if exists sdk_docs_own on storage.objects;
create policy sdk_docs_own on storage.objects for all to authenticated
    using (bucket_id = 'sdk-docs' and (storage.foldername(name))[1] = auth.uid()::text)
    with check (bucket_id = 'sdk-docs' and (storage.foldername(name))[1] = auth.uid()::text);
"""


@pytest.fixture(scope="module")
def bucket(stack: StackHandle) -> str:
    require(stack, "storage", "auth")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(POLICIES)
    admin = AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key).admin
    with contextlib.suppress(errors.Conflict):
        admin.files.create_bucket("sdk-docs", public=False, file_size_limit=1024 * 1024)
    return "sdk-docs"


def test_upload_download_list_sign_remove(app: AppKit, bucket: str, tmp_path: Path) -> None:
    session = signed_up(app)
    me = app.as_user(session)
    uid = session.user.id
    stored = me.files.upload(bucket, f"{uid}/a.txt", b"hello", content_type="text/plain")
    assert stored.path == f"{uid}/a.txt"
    assert stored.key == f"{bucket}/{uid}/a.txt"
    on_disk = tmp_path / "b.bin"
    on_disk.write_bytes(b"\x00\x01\x02")
    me.files.upload(bucket, f"{uid}/b.bin", on_disk)
    me.files.upload(bucket, f"{uid}/sub/c.txt", io.BytesIO(b"from a file object"), content_type="text/plain")
    assert me.files.download(bucket, f"{uid}/a.txt") == b"hello"
    assert me.files.download(bucket, f"{uid}/b.bin") == b"\x00\x01\x02"
    listing = {f.name: f for f in me.files.list(bucket, uid)}
    assert set(listing) == {"a.txt", "b.bin", "sub"}
    assert listing["sub"].is_folder and not listing["a.txt"].is_folder
    assert listing["a.txt"].size == 5
    url = me.files.signed_url(bucket, f"{uid}/a.txt", expires_in=60)
    assert httpx.get(url).content == b"hello"
    with pytest.raises(errors.Conflict):
        me.files.upload(bucket, f"{uid}/a.txt", b"again")
    me.files.upload(bucket, f"{uid}/a.txt", b"replaced", upsert=True)
    assert me.files.download(bucket, f"{uid}/a.txt") == b"replaced"
    me.files.update(bucket, f"{uid}/a.txt", b"updated", content_type="text/plain")
    assert me.files.download(bucket, f"{uid}/a.txt") == b"updated"
    me.files.move(bucket, f"{uid}/b.bin", f"{uid}/moved.bin")
    me.files.copy(bucket, f"{uid}/moved.bin", f"{uid}/copy.bin")
    assert me.files.download(bucket, f"{uid}/copy.bin") == b"\x00\x01\x02"
    removed = me.files.remove(bucket, [f"{uid}/a.txt", f"{uid}/moved.bin"])
    assert sorted(removed) == sorted([f"{uid}/a.txt", f"{uid}/moved.bin"])
    with pytest.raises(errors.NotFound):
        me.files.download(bucket, f"{uid}/a.txt")


def test_users_cannot_touch_each_others_files(app: AppKit, bucket: str) -> None:
    alice, bob = signed_up(app), signed_up(app)
    a, b = app.as_user(alice), app.as_user(bob)
    a.files.upload(bucket, f"{alice.user.id}/secret.txt", b"alice")
    with pytest.raises((errors.NotFound, errors.PermissionDenied)):
        b.files.download(bucket, f"{alice.user.id}/secret.txt")
    with pytest.raises(errors.PermissionDenied):
        b.files.upload(bucket, f"{alice.user.id}/planted.txt", b"bob")
    assert b.files.list(bucket, alice.user.id) == []
    assert b.files.remove(bucket, f"{alice.user.id}/secret.txt") == []
    assert a.files.download(bucket, f"{alice.user.id}/secret.txt") == b"alice"
    with pytest.raises((errors.NotFound, errors.PermissionDenied)):
        b.files.signed_url(bucket, f"{alice.user.id}/secret.txt")
    # anon: nothing
    with pytest.raises((errors.NotFound, errors.PermissionDenied, errors.AuthError)):
        app.files.download(bucket, f"{alice.user.id}/secret.txt")


def test_bad_input_and_missing_things(app: AppKit, bucket: str) -> None:
    me = app.as_user(signed_up(app))
    with pytest.raises(errors.ValidationError):
        me.files.upload(bucket, "../escape.txt", b"x")
    with pytest.raises(errors.ValidationError):
        me.files.upload(bucket, "ok.txt", 12345)  # type: ignore[arg-type]
    with pytest.raises(errors.ValidationError):
        me.files.upload(bucket, "ok.txt", Path("/nonexistent/file"))
    with pytest.raises(errors.NotFound):
        app.admin.files.download(f"no-such-bucket-{uuid.uuid4().hex[:6]}", "a.txt")
    with pytest.raises(errors.ValidationError):
        me.files.signed_url(bucket, "x.txt", expires_in=0)


def test_bucket_admin(app: AppKit, bucket: str) -> None:
    name = f"sdk-tmp-{uuid.uuid4().hex[:6]}"
    admin = app.admin
    admin.files.create_bucket(name, public=True)
    assert admin.files.get_bucket(name).public is True
    assert name in [b.id for b in admin.files.list_buckets()]
    admin.files.upload(name, "p/x.txt", b"public")
    assert httpx.get(admin.files.public_url(name, "p/x.txt")).content == b"public"
    with pytest.raises(errors.Conflict):
        admin.files.create_bucket(name)
    admin.files.empty_bucket(name)
    admin.files.delete_bucket(name)
    with pytest.raises(errors.NotFound):
        admin.files.get_bucket(name)
