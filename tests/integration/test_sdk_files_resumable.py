"""``app.files.upload_resumable`` (TUS) against the local stack: 6 MB chunks from disk, progress,
resuming after a real interruption (a cut connection, an aborted client), typed errors."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appkit import AppKit, errors
from appkit.files import CHUNK_SIZE
from tests.proxy_support import CuttingProxy
from tests.sdk_support import make_app, make_async_app, require
from tests.support import StackHandle

MB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket(stack: StackHandle) -> Iterator[str]:
    require(stack, "storage")
    name = f"tus-{uuid.uuid4().hex[:8]}"
    with make_app(stack) as app:
        app.admin.files.create_bucket(name)
        yield name
        app.admin.files.empty_bucket(name)
        app.admin.files.delete_bucket(name)


@pytest.fixture()
def app(stack: StackHandle) -> Iterator[AppKit]:
    client = make_app(stack)
    yield client
    client.close()


def big_file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / f"blob-{size}.bin"
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return path


def proxied_app(stack: StackHandle, proxy: CuttingProxy, **options: object) -> AppKit:
    return AppKit(url=proxy.url, anon_key=stack.anon_key, service_role_key=stack.service_role_key,
                  **options)  # type: ignore[arg-type]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_chunks_of_6_mb_with_progress(app: AppKit, bucket: str, tmp_path: Path) -> None:
    src = big_file(tmp_path, 20 * MB + 123)
    seen: list[tuple[int, int]] = []
    stored = app.admin.files.upload_resumable(bucket, "big/a.bin", src, on_progress=lambda s, t: seen.append((s, t)))
    assert stored.key == f"{bucket}/big/a.bin"
    assert [s for s, _ in seen] == [0, 6 * MB, 12 * MB, 18 * MB, 20 * MB + 123]
    assert {t for _, t in seen} == {20 * MB + 123}
    assert digest(app.admin.files.download(bucket, "big/a.bin")) == digest(src.read_bytes())
    info = next(f for f in app.admin.files.list(bucket, "big") if f.name == "a.bin")
    assert info.size == 20 * MB + 123 and info.content_type == "application/octet-stream"


def test_upload_of_a_large_path_goes_through_tus(app: AppKit, bucket: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from appkit._sync import files as sync_files

    calls: list[str] = []
    original = sync_files.Files.upload_resumable

    def spy(self: sync_files.Files, *args: object, **kwargs: object) -> object:
        calls.append(str(args[1]))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sync_files.Files, "upload_resumable", spy)
    src = big_file(tmp_path, CHUNK_SIZE + 1)
    app.admin.files.upload(bucket, "big/via-upload.bin", src, content_type="video/mp4")
    small = big_file(tmp_path, 1000)
    app.admin.files.upload(bucket, "big/small.bin", small)
    assert calls == ["big/via-upload.bin"]
    assert digest(app.admin.files.download(bucket, "big/via-upload.bin")) == digest(src.read_bytes())


def test_a_cut_connection_is_resumed_where_the_server_stopped(stack: StackHandle, bucket: str,
                                                             tmp_path: Path) -> None:
    src = big_file(tmp_path, 15 * MB)
    with CuttingProxy(stack.api_url) as proxy, proxied_app(stack, proxy) as app:
        proxy.cut_next_after(8 * MB)  # inside the second chunk
        seen: list[int] = []
        app.admin.files.upload_resumable(bucket, "cut/a.bin", src, on_progress=lambda s, t: seen.append(s))
        assert proxy.cuts == 1 and proxy.connections >= 2
    assert seen[-1] == 15 * MB and seen == sorted(seen)
    with make_app(stack) as app:
        assert digest(app.admin.files.download(bucket, "cut/a.bin")) == digest(src.read_bytes())


def test_an_aborted_client_resumes_from_its_url(app: AppKit, stack: StackHandle, bucket: str,
                                                tmp_path: Path) -> None:
    src = big_file(tmp_path, 14 * MB)
    urls: list[str] = []

    def abort_after_two_chunks(sent: int, total: int) -> None:
        if sent >= 12 * MB:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        app.admin.files.upload_resumable(bucket, "abort/a.bin", src, on_url=urls.append,
                                         on_progress=abort_after_two_chunks)
    head = httpx.head(urls[0], headers={"Tus-Resumable": "1.0.0", "apikey": stack.service_role_key,
                                        "Authorization": f"Bearer {stack.service_role_key}"})
    assert head.headers["upload-offset"] == str(12 * MB)
    with pytest.raises(errors.NotFound):
        app.admin.files.download(bucket, "abort/a.bin")
    seen: list[int] = []
    # a new process would do exactly this with the URL it stored
    with make_app(stack) as other:
        other.admin.files.upload_resumable(bucket, "abort/a.bin", src, resume_url=urls[0],
                                           on_progress=lambda s, t: seen.append(s))
    assert seen == [12 * MB, 14 * MB]  # only the rest was sent
    assert digest(app.admin.files.download(bucket, "abort/a.bin")) == digest(src.read_bytes())


def test_giving_up_raises_upload_interrupted_then_resume(stack: StackHandle, bucket: str, tmp_path: Path) -> None:
    src = big_file(tmp_path, 13 * MB)
    with CuttingProxy(stack.api_url) as proxy, proxied_app(stack, proxy, max_retries=0) as app:
        def network_goes_down(sent: int, total: int) -> None:
            if sent >= 6 * MB:
                proxy.cut_all = True

        with pytest.raises(errors.UploadInterrupted) as info:
            app.admin.files.upload_resumable(bucket, "down/a.bin", src, retries=2,
                                             on_progress=network_goes_down)
        assert info.value.offset == 6 * MB and info.value.upload_url.startswith(proxy.url)
        proxy.cut_all = False  # the network is back
        seen: list[int] = []
        app.admin.files.upload_resumable(bucket, "down/a.bin", src, resume_url=info.value.upload_url,
                                         on_progress=lambda s, t: seen.append(s))
    assert seen[0] == 6 * MB and seen[-1] == 13 * MB
    with make_app(stack) as plain:
        assert digest(plain.admin.files.download(bucket, "down/a.bin")) == digest(src.read_bytes())


def test_a_forgotten_resume_url_starts_over(app: AppKit, bucket: str, tmp_path: Path) -> None:
    src = big_file(tmp_path, 7 * MB)
    gone = f"{app.settings.storage_url.rstrip('/')}/upload/resumable/{uuid.uuid4().hex}"
    seen: list[int] = []
    app.admin.files.upload_resumable(bucket, "gone/a.bin", src, resume_url=gone, on_progress=lambda s, t: seen.append(s))
    assert seen == [0, 6 * MB, 7 * MB]


def test_bad_input(app: AppKit, bucket: str, tmp_path: Path) -> None:
    src = big_file(tmp_path, 7 * MB)
    files = app.admin.files
    with pytest.raises(errors.ValidationError):
        files.upload_resumable(bucket, "x.bin", tmp_path / "missing.bin")
    with pytest.raises(errors.ValidationError):
        files.upload_resumable(bucket, "../x.bin", src)
    with pytest.raises(errors.ValidationError):
        files.upload_resumable(bucket, "x.bin", src, chunk_size=0)
    with pytest.raises(errors.ValidationError):
        files.upload_resumable("", "x.bin", src)
    with pytest.raises(errors.NotFound):
        files.upload_resumable(f"nope-{uuid.uuid4().hex[:6]}", "x.bin", src)
    files.upload_resumable(bucket, "dup/x.bin", src)
    with pytest.raises(errors.Conflict):
        files.upload_resumable(bucket, "dup/x.bin", src)
    files.upload_resumable(bucket, "dup/x.bin", src, upsert=True)
    urls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        files.upload_resumable(bucket, "dup/y.bin", src, on_url=urls.append,
                               on_progress=lambda s, t: (_ for _ in ()).throw(KeyboardInterrupt) if s else None)
    other = big_file(tmp_path, 9 * MB)
    with pytest.raises(errors.ValidationError):  # the stored URL belongs to a file of another size
        files.upload_resumable(bucket, "dup/y.bin", other, resume_url=urls[0])


def test_a_file_that_shrinks_mid_upload_is_a_typed_error(app: AppKit, bucket: str, tmp_path: Path) -> None:
    """Chunks are streamed from disk as they are sent: a file cut short under the upload fails with
    ValidationError (not a hang or a short body the server would wait for), and nothing is stored."""
    src = big_file(tmp_path, 7 * MB)
    with pytest.raises(errors.ValidationError, match="shrank"):
        app.admin.files.upload_resumable(bucket, "shrunk/x.bin", src,
                                         on_url=lambda url: os.truncate(src, 3 * MB))
    assert app.admin.files.list(bucket, "shrunk") == []


def test_anon_caller_is_denied(app: AppKit, bucket: str, tmp_path: Path) -> None:
    src = big_file(tmp_path, 7 * MB)
    with pytest.raises(errors.PermissionDenied):
        app.files.upload_resumable(bucket, "anon/x.bin", src)


async def test_async_resumable(stack: StackHandle, bucket: str, tmp_path: Path) -> None:
    src = big_file(tmp_path, 7 * MB)
    async with make_async_app(stack) as app:
        seen: list[int] = []
        await app.admin.files.upload_resumable(bucket, "async/a.bin", src, on_progress=lambda s, t: seen.append(s))
        assert seen == [0, 6 * MB, 7 * MB]
        assert digest(await app.admin.files.download(bucket, "async/a.bin")) == digest(src.read_bytes())


def test_resumable_upload_example_runs(stack: StackHandle, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support import REPO

    src = big_file(tmp_path, 7 * MB)
    env = {**os.environ, "SUPABASE_URL": stack.api_url, "SUPABASE_ANON_KEY": stack.anon_key,
           "SUPABASE_SERVICE_ROLE_KEY": stack.service_role_key}
    bucket = f"ex-{uuid.uuid4().hex[:6]}"
    result = subprocess.run([sys.executable, str(REPO / "examples" / "resumable_upload.py"), str(src), bucket],
                            env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert f"stored {bucket}/{src.name}" in result.stdout and "100.0%" in result.stdout
    assert not src.with_name(src.name + ".upload-url").exists()
