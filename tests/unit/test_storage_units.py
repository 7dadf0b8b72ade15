"""Unit tests of the storage service's pure pieces: keys, multipart streaming, ranges, MIME rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appkit.local.storage.errors import StorageError
from appkit.local.storage.files import mime_allowed, normalize_cache_control, parse_range
from appkit.local.storage.multipart import END, MultipartError, MultipartParser, Part, boundary_of
from appkit.local.storage.paths import DiskStore, check_bucket_id, check_key, key_problem


@pytest.mark.parametrize("key", [
    "../x", "a/../b", "a/..", "..", ".", "a/./b", "/abs", "a//b", "a/", "a\\b", "..\\x", "a\x00b",
    "%2e%2e/x", "a%2f..%2fb", "%00", "%5c", "a\nb", "a\x7fb", "", "x" * 1025,
])
def test_bad_keys_rejected(key: str) -> None:
    assert key_problem(key) is not None
    with pytest.raises(StorageError) as exc:
        check_key(key)
    assert exc.value.code == "InvalidKey" and exc.value.status == 400


@pytest.mark.parametrize("key", ["a.txt", "folder/sub/file.png", "..a/b..", "a..b", "spaces ok/(1).txt",
                                 "unicodé/文件.txt", ".hidden", "a/.emptyFolderPlaceholder"])
def test_good_keys_accepted(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("bucket", ["", ".", "..", "a/b", "a\\b", " lead", "x" * 101, "a%2fb"])
def test_bad_bucket_names(bucket: str) -> None:
    with pytest.raises(StorageError):
        check_bucket_id(bucket)


def test_disk_paths_come_from_versions_only(tmp_path: object) -> None:
    from pathlib import Path

    store = DiskStore(Path(str(tmp_path)) / "storage")
    assert store.path_for("../../etc/passwd") is None
    assert store.path_for("A" * 32) is None
    assert store.path_for(None) is None
    p = store.path_for("0123456789abcdef0123456789abcdef")
    assert p is not None and p.parent.parent == store.objects


def _body(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for header, data in parts:
        out += f"--{boundary}\r\n{header}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _parse(body: bytes, boundary: bytes, sizes: list[int]) -> list[tuple[Part, bytes]]:
    parser = MultipartParser(boundary)
    parts: list[tuple[Part, bytes]] = []
    pos = 0
    chunks = []
    for n in sizes:
        chunks.append(body[pos:pos + n])
        pos += n
    chunks.append(body[pos:])
    ended = False
    for chunk in chunks:
        for ev in parser.feed(chunk):
            if isinstance(ev, Part):
                parts.append((ev, b""))
            elif ev is END:
                ended = True
            else:
                assert isinstance(ev, bytes | memoryview)
                part, data = parts[-1]
                parts[-1] = (part, data + bytes(ev))
    assert ended and parser.done
    return parts


FILE_DATA = b"\r\n--not-the-boundary\r\n" + bytes(range(256)) * 3 + b"\r\n--XYZ"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=80), max_size=40))
def test_multipart_any_chunking(sizes: list[int]) -> None:
    body = _body("XYZZY", [('Content-Disposition: form-data; name="cacheControl"', b"3600"),
                           ('Content-Disposition: form-data; name="file"; filename="a b.bin"\r\n'
                            "Content-Type: image/png", FILE_DATA)])
    parts = _parse(body, b"XYZZY", sizes)
    assert [(p.name, p.filename, p.content_type) for p, _ in parts] == [
        ("cacheControl", None, None), ("file", "a b.bin", "image/png")]
    assert parts[0][1] == b"3600" and parts[1][1] == FILE_DATA


@pytest.mark.parametrize("body", [
    b"--B\r\nno-colon-header\r\n\r\ndata\r\n--B--",
    b"--B\r\nContent-Type: text/plain\r\n\r\ndata\r\n--B--",
    b"--Bxx",
    b"--B\r\n" + b"X" * 20000,
])
def test_multipart_malformed(body: bytes) -> None:
    parser = MultipartParser(b"B")
    with pytest.raises(MultipartError):
        parser.feed(body)


def test_boundary_of() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
    assert boundary_of("multipart/form-data; charset=utf-8; boundary=xyz") == b"xyz"
    for bad in ["multipart/form-data", "text/plain; boundary=x", "multipart/form-data; boundary="]:
        with pytest.raises(MultipartError):
            boundary_of(bad)


def test_ranges() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-3", 10) == (0, 3)
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=8-100", 10) == (8, 9)
    assert parse_range("bytes=0-1,3-4", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=x-y", 10) is None
    for bad in ("bytes=10-", "bytes=50-60", "bytes=-0"):
        with pytest.raises(StorageError):
            parse_range(bad, 10)


def test_mime_rules() -> None:
    assert mime_allowed("anything/at-all", None)
    assert mime_allowed("image/png", ["image/*"])
    assert mime_allowed("IMAGE/PNG; q=1", ["image/png"])
    assert mime_allowed("text/plain;charset=UTF-8", ["text/plain"])
    assert not mime_allowed("text/plain", ["image/*"])
    assert not mime_allowed("imagex/png", ["image/*"])
    assert normalize_cache_control("3600") == "max-age=3600"
    assert normalize_cache_control("no-store") == "no-store"
    assert normalize_cache_control(None) == "no-cache"


def test_config_rejects_bad_bucket_names(tmp_path: object) -> None:
    from pathlib import Path

    from appkit.errors import ConfigError
    from appkit.local.config import load_config

    path = Path(str(tmp_path)) / "config.toml"
    path.write_text('[storage.buckets."bad/name"]\npublic = true\n')
    with pytest.raises(ConfigError, match="invalid bucket name"):
        load_config(path)
    path.write_text('[storage]\nfile_size_limit = "2GiB"\n[storage.buckets.images]\nfile_size_limit = "1MiB"\n'
                    'allowed_mime_types = ["image/*"]\nobjects_path = "./img"\n')
    cfg = load_config(path).storage
    assert cfg.file_size_limit == 2 * 1024**3
    assert cfg.buckets["images"].file_size_limit == 1024**2 and cfg.buckets["images"].objects_path == "./img"
