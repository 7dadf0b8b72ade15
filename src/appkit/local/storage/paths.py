"""Object keys, bucket names, and where object bytes live on disk.

Keys are validated like Supabase Storage validates them (after the 2026 hardening of
its file backend): no ``.``/``..`` or empty segments, no leading ``/``, no NUL or other
control characters, no backslash, no ``%`` (so no percent-encoded variant of any of
these survives the one decoding the HTTP server applies). On top of that, bytes never
live at a path derived from the key: each stored version is a file named by a
server-generated UUID (``objects/<v[:2]>/<v>``), so no key can reach outside the
storage directory even if validation were bypassed (rows inserted by SQL included: a
row whose ``version`` is not one of ours has no file).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path

from appkit.local.atomic import fsync_dir
from appkit.local.storage.errors import invalid_bucket_name, invalid_key

MAX_KEY_BYTES = 1024
_VERSION_RE = re.compile(r"^[0-9a-f]{32}$")
# Supabase Storage's allowed ASCII set; non-ASCII printable characters are also accepted.
_KEY_ASCII_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/!-.*'() &$@=;:+,?")
_BUCKET_RE = re.compile(r"[\w!\-.*'() &$@=;:+,?]+", re.ASCII)


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid object key, or None when it is."""
    if not key:
        return "empty key"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return "key too long"
    if key.startswith("/"):
        return "absolute path"
    for ch in key:
        if ch == "\x00":
            return "NUL byte"
        if ch == "\\":
            return "backslash"
        if ch == "%":
            return "percent-encoded sequence"
        if ord(ch) < 0x80:
            if ch not in _KEY_ASCII_OK:
                return "invalid character"
        elif not ch.isprintable() or 0xD800 <= ord(ch) <= 0xDFFF:
            return "invalid character"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return "empty or dot segment"
    return None


def check_key(key: str) -> str:
    if key_problem(key) is not None:
        raise invalid_key(key)
    return key


def check_bucket_id(bucket_id: str) -> str:
    if (not bucket_id or len(bucket_id) > 100 or bucket_id in (".", "..") or not _BUCKET_RE.fullmatch(bucket_id)
            or bucket_id != bucket_id.strip()):
        raise invalid_bucket_name()
    return bucket_id


def new_version() -> str:
    return uuid.uuid4().hex


def is_version(value: object) -> bool:
    return isinstance(value, str) and bool(_VERSION_RE.match(value))


class DiskStore:
    """The storage directory: ``objects/`` (one immutable file per version), ``tmp/``, ``tus/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.tus = root / "tus"

    def prepare(self) -> None:
        for d in (self.root, self.objects, self.tmp, self.tus):
            d.mkdir(parents=True, exist_ok=True)

    def path_for(self, version: object) -> Path | None:
        """The file of a stored version, or None for a version that is not ours."""
        if not is_version(version):
            return None
        assert isinstance(version, str)
        return self.objects / version[:2] / version

    def temp_path(self) -> Path:
        return self.tmp / f"{uuid.uuid4().hex}.part"

    def install(self, temp: Path, version: str) -> Path:
        """Atomically move a fully written, fsynced temp file into place as ``version``."""
        final = self.path_for(version)
        assert final is not None
        final.parent.mkdir(exist_ok=True)
        os.replace(temp, final)
        fsync_dir(final.parent)
        return final

    def link(self, source_version: str, version: str) -> Path | None:
        """Share an existing version's bytes under a new version (copy): versions are immutable."""
        src = self.path_for(source_version)
        final = self.path_for(version)
        if src is None or final is None:
            return None
        final.parent.mkdir(exist_ok=True)
        try:
            os.link(src, final)
        except FileNotFoundError:
            return None
        fsync_dir(final.parent)
        return final

    def remove(self, version: object) -> None:
        path = self.path_for(version)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def iter_versions(self) -> list[tuple[str, Path]]:
        found: list[tuple[str, Path]] = []
        if not self.objects.is_dir():
            return found
        for sub in self.objects.iterdir():
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                found.append((f.name, f))
        return found
