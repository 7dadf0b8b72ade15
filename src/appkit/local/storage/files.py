"""Streaming request bodies to disk and files back to the client, with bounded memory."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from appkit.local.storage import errors as E
from appkit.local.storage.multipart import END, MultipartError, MultipartParser, Part, boundary_of

READ_CHUNK = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
#: a form may carry this much besides the file (fields, part headers, preamble) before it is "too large"
MAX_FORM_OVERHEAD = 1024 * 1024
DEFAULT_MIME = "application/octet-stream"


def mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    """Does ``mime`` match the bucket's ``allowed_mime_types`` (wildcards such as ``image/*``)?"""
    if not allowed:
        return True
    base = mime.split(";", 1)[0].strip().lower()
    kind = base.split("/", 1)[0]
    for entry in allowed:
        pattern = entry.split(";", 1)[0].strip().lower()
        if pattern in ("*", "*/*") or pattern == base:
            return True
        if pattern.endswith("/*") and pattern[:-2] == kind:
            return True
    return False


_HEADER_SAFE = re.compile(r"[\x20-\x7e]{1,512}")
_MIME_RE = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+*-]+(\s*;[\x20-\x7e]*)?", re.ASCII)


def check_mimetype(value: str) -> str:
    """A content type we can store and send back as a header (printable ASCII ``type/subtype``)."""
    value = value.strip()
    if not _MIME_RE.fullmatch(value) or len(value) > 255:
        raise E.StorageError(400, "InvalidRequest", f"Invalid content type: {value[:100]!r}")
    return value


def normalize_cache_control(value: str | None) -> str:
    if value is None or not value.strip():
        return "no-cache"
    value = value.strip()
    if not _HEADER_SAFE.fullmatch(value):
        raise E.StorageError(400, "InvalidRequest", "Invalid cache-control value")
    return f"max-age={value}" if value.isascii() and value.isdigit() else value


def parse_user_metadata(raw: str | bytes, *, b64: bool) -> dict[str, Any]:
    try:
        text = base64.b64decode(raw, validate=False) if b64 else raw
        data = json.loads(text)
    except (ValueError, TypeError):
        raise E.invalid_request("metadata must be a JSON object") from None
    if not isinstance(data, dict):
        raise E.invalid_request("metadata must be a JSON object")
    return data


@dataclass
class Ingested:
    temp: Path
    size: int
    mimetype: str
    cache_control: str
    user_metadata: dict[str, Any] | None = None
    fields: dict[str, str] = field(default_factory=dict)


#: bytes written between two starts of write-back (``Flusher``)
FLUSH_EVERY = 8 * 1024 * 1024


class Flusher:
    """Starts the kernel's write-back of a file's bytes every ``FLUSH_EVERY`` while they arrive, so
    the fsync that ends an upload waits for the last few MB instead of the whole file (1 GiB
    written in 256 KiB blocks here: the final fsync 0.45 s -> 0.01 s, write + sync 1.15-1.46 s
    -> 0.90 s; BENCHMARKS.md, issue 18). Asynchronous
    (``POSIX_FADV_DONTNEED`` starts write-back without waiting for it); durability is still
    the single fsync at the end."""

    def __init__(self, fd: int, start: int = 0) -> None:
        self.fd = fd
        self.flushed = start

    def wrote(self, end: int) -> None:
        if end - self.flushed >= FLUSH_EVERY:
            self.flush(end)

    def flush(self, end: int) -> None:
        if end > self.flushed and hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(self.fd, self.flushed, end - self.flushed, os.POSIX_FADV_DONTNEED)
            self.flushed = end


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _TempWriter:
    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.flusher = Flusher(self.fd)

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise E.entity_too_large()
        write_all(self.fd, data)
        self.flusher.wrote(self.size)

    async def finish(self) -> None:
        await anyio.to_thread.run_sync(os.fsync, self.fd)
        os.close(self.fd)
        self.fd = -1

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def ingest_raw(chunks: AsyncIterator[bytes], temp: Path, *, mimetype: str, cache_control: str | None,
                     limit: int) -> Ingested:
    cache = normalize_cache_control(cache_control)  # validated before a byte is written
    writer = _TempWriter(temp, limit)
    try:
        async for chunk in chunks:
            if chunk:
                writer.write(chunk)
        await writer.finish()
    except BaseException:
        writer.abort()
        raise
    return Ingested(temp, writer.size, mimetype, cache)


async def ingest_multipart(chunks: AsyncIterator[bytes], temp: Path, *, content_type: str, limit: int,
                           allowed: list[str] | None) -> Ingested:
    """Stream the first file part of a form to ``temp``; collect the small text fields."""
    try:
        parser = MultipartParser(boundary_of(content_type))
    except MultipartError as exc:
        raise E.invalid_request(f"Malformed multipart body: {exc}") from None
    writer: _TempWriter | None = None
    mimetype = DEFAULT_MIME
    fields: dict[str, bytearray] = {}
    field_total = 0
    current: str | None = None  # "file", "field:<name>" or None
    file_done = False
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > limit + MAX_FORM_OVERHEAD:
                raise E.entity_too_large()
            try:
                events = parser.feed(chunk)
            except MultipartError as exc:
                raise E.invalid_request(f"Malformed multipart body: {exc}") from None
            for ev in events:
                if isinstance(ev, Part):
                    if current == "file":
                        file_done = True
                    if writer is None and not file_done and (ev.filename is not None or ev.name == "file"):
                        mimetype = check_mimetype(ev.content_type or DEFAULT_MIME)
                        if not mime_allowed(mimetype, allowed):
                            raise E.invalid_mime_type(mimetype)
                        writer = _TempWriter(temp, limit)
                        current = "file"
                    elif ev.name:
                        current = f"field:{ev.name}"
                        fields.setdefault(ev.name, bytearray())
                    else:
                        current = None
                elif ev is END:
                    if current == "file":
                        file_done = True
                    current = None
                elif isinstance(ev, bytes | memoryview):
                    if current == "file":
                        assert writer is not None
                        writer.write(ev)
                    elif current is not None:
                        field_total += len(ev)
                        if field_total > MAX_FIELD_BYTES:
                            raise E.invalid_request("Malformed multipart body: form fields too large")
                        fields[current[6:]] += ev
            if parser.done:
                break
        if not parser.done:
            raise E.invalid_request("Malformed multipart body: unexpected end of data")
        if writer is None:
            raise E.invalid_request("No content provided")
        # the form's fields are checked before the file counts as received
        text = {k: v.decode("utf-8", "replace") for k, v in fields.items()}
        user_metadata = parse_user_metadata(text["metadata"], b64=False) if text.get("metadata") else None
        cache = normalize_cache_control(text.get("cacheControl"))
        await writer.finish()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return Ingested(temp, writer.size, mimetype, cache, user_metadata, text)


# -- responses ------------------------------------------------------------------------------------------

def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


#: the characters JavaScript's encodeURIComponent leaves as they are (besides letters and digits)
_URI_COMPONENT_SAFE = "-_.!~*'()"


def content_disposition(download: str) -> str:
    """Supabase Storage's header for ``?download[=name]``: ``attachment;`` for a bare
    ``?download``, else the name encodeURIComponent-encoded in both ``filename`` (unquoted)
    and ``filename*``."""
    if download == "":
        return "attachment;"
    encoded = quote(download, safe=_URI_COMPONENT_SAFE)
    return f"attachment; filename={encoded}; filename*=UTF-8''{encoded}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for, as ``(start, end_inclusive)``; None serves the whole file.

    Raises the InvalidRange error (sent as 416) when the range cannot be satisfied.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise E.invalid_range()
            return (max(size - n, 0), size - 1) if size else _unsatisfiable()
        start = int(first)
        end = int(last) if last != "" else size - 1
    except ValueError:
        return None
    if start < 0:
        return None
    if start >= size:
        _unsatisfiable()
    if end < start:
        return None
    return start, min(end, size - 1)


def _unsatisfiable() -> NoReturn:
    raise E.invalid_range()


#: files up to this size are read on the event loop (one page-cache read of microseconds)
INLINE_READ = 64 * 1024


class FileResponse(Response):
    """Stream an already opened file descriptor (so a concurrent delete cannot break the reply)."""

    def __init__(self, fd: int, *, start: int, length: int, status_code: int, headers: dict[str, str],
                 head: bool = False) -> None:
        self.fd = fd
        self.start = start
        self.length = length
        self.status_code = status_code
        self.head = head
        self.background = None
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if self.head:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            pos, remaining = self.start, self.length
            while remaining > 0:
                size = min(READ_CHUNK, remaining)
                if self.length <= INLINE_READ:  # a small file: a thread hop costs more than the read
                    data = os.pread(self.fd, size, pos)
                else:
                    data = await anyio.to_thread.run_sync(os.pread, self.fd, size, pos)
                if not data:
                    break
                pos += len(data)
                remaining -= len(data)
                await send({"type": "http.response.body", "body": data, "more_body": remaining > 0})
            if remaining > 0 or self.length == 0:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            os.close(self.fd)
