"""Resumable uploads: a TUS 1.0.0 client for Supabase Storage's ``/upload/resumable``.

Supabase's clients switch to TUS above 6 MB and send 6 MB chunks (the size its hosted
service expects); so does this one. Each chunk is streamed from disk in 1 MiB blocks (never
a whole chunk in memory); progress is heard when the server confirms a chunk. After a
dropped connection the client asks the server how much it kept (``HEAD``) and continues
from there; when it gives up it raises ``errors.UploadInterrupted`` with the upload's URL,
which a later call (even from another process) passes as ``resume_url``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin

import httpx

from appkit import errors
from appkit._errors_map import boundary, from_response

TUS_VERSION = "1.0.0"
CHUNK_SIZE = 6 * 1024 * 1024
BLOCK_SIZE = 1024 * 1024  # one read from disk / one write to the socket
ProgressCallback = Callable[[int, int], None]


def _metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


class AsyncTusUpload:
    """One file's resumable upload to ``endpoint`` (``.../storage/v1/upload/resumable``)."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str, headers: dict[str, str], *,
                 chunk_size: int = CHUNK_SIZE, retries: int = 5, backoff: float = 0.5) -> None:
        if chunk_size < 1:
            raise errors.ValidationError("chunk_size must be positive", code="InvalidRequest")
        self._http = http
        self._endpoint = endpoint
        self._headers = {**headers, "Tus-Resumable": TUS_VERSION}
        self._chunk = chunk_size
        self._retries = retries
        self._backoff = backoff

    async def run(self, file: Path, *, bucket: str, path: str, content_type: str, upsert: bool,
                  cache_control: int | None = None, resume_url: str | None = None,
                  on_url: Callable[[str], None] | None = None, on_progress: ProgressCallback | None = None) -> None:
        """Upload ``file`` to ``bucket/path``; continue ``resume_url`` when the server still has it."""
        try:
            length = file.stat().st_size
            handle = open(file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise errors.ValidationError(f"cannot read {file}: {exc.strerror}", code="invalid_file") from None
        with handle:
            url, offset = None, 0
            if resume_url:
                known = await self._head(resume_url, length)
                if known is not None:
                    url, offset = resume_url, known
            if url is None:
                meta = {"bucketName": bucket, "objectName": path, "contentType": content_type}
                if cache_control is not None:
                    meta["cacheControl"] = str(cache_control)
                url = await self._create(length, meta, upsert)
            if on_url is not None:
                on_url(url)
            if on_progress is not None:
                on_progress(offset, length)
            failures = 0
            while offset < length:
                try:
                    offset = await self._patch(url, offset, min(self._chunk, length - offset), handle)
                except (httpx.TransportError, _Retry) as exc:
                    failures += 1
                    if failures > self._retries:
                        raise errors.UploadInterrupted(
                            f"the upload stopped at byte {offset} of {length} ({type(exc).__name__});"
                            " resume it with resume_url", upload_url=url, offset=offset) from None
                    await asyncio.sleep(self._backoff * failures)
                    try:
                        known = await self._head(url, length)
                    except errors.ServiceUnavailable:
                        continue
                    if known is None:
                        raise errors.NotFound("the server no longer has this upload (expired or finished)",
                                              code="NoSuchUpload") from None
                    offset = known
                    continue
                failures = 0
                if on_progress is not None:
                    on_progress(offset, length)

    async def _create(self, length: int, meta: dict[str, str], upsert: bool) -> str:
        headers = {**self._headers, "Upload-Length": str(length), "Upload-Metadata": _metadata(meta),
                   "x-upsert": "true" if upsert else "false"}
        with boundary():
            response = await self._http.post(self._endpoint, headers=headers)
        if response.status_code != 201:
            raise from_response(response)
        location = response.headers.get("location")
        if not location:
            raise errors.UnexpectedResponse("the server created an upload without a Location",
                                            code="unexpected_response")
        return str(urljoin(self._endpoint + "/", location))

    async def _head(self, url: str, length: int) -> int | None:
        """How many bytes the server holds, or None if it no longer knows the upload."""
        with boundary():
            response = await self._http.head(url, headers=self._headers)
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise from_response(response)
        try:
            offset = int(response.headers["upload-offset"])
            total = int(response.headers.get("upload-length", length))
        except (KeyError, ValueError):
            raise errors.UnexpectedResponse("HEAD returned no Upload-Offset", code="unexpected_response") from None
        if total != length:
            raise errors.ValidationError(f"the upload at {url} is for {total} bytes, the file has {length}",
                                         code="InvalidRequest")
        return offset

    async def _patch(self, url: str, offset: int, size: int, handle: BinaryIO) -> int:
        """Send ``size`` bytes of the file from ``offset``; the server's new offset."""
        headers = {**self._headers, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
                   "Content-Length": str(size)}
        response = await self._http.patch(url, headers=headers,
                                          content=_blocks(handle, offset, size))
        if response.status_code in (409, 423):  # offset moved on / the server still holds a dropped request
            raise _Retry(response.status_code)
        if response.status_code != 204:
            raise from_response(response)
        try:
            return int(response.headers["upload-offset"])
        except (KeyError, ValueError):
            raise errors.UnexpectedResponse("PATCH returned no Upload-Offset", code="unexpected_response") from None


async def _blocks(handle: BinaryIO, offset: int, size: int) -> AsyncIterator[bytes]:
    """``size`` bytes of ``handle`` from ``offset``, a block at a time."""
    handle.seek(offset)
    left = size
    while left:
        block = handle.read(min(BLOCK_SIZE, left))
        if not block:
            raise errors.ValidationError("the file shrank while it was being uploaded", code="invalid_file")
        left -= len(block)
        yield block


class _Retry(Exception):
    """The server asked us to find the offset again before continuing."""
