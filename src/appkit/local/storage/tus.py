"""Resumable uploads: the TUS 1.0.0 protocol at ``/upload/resumable``, as Supabase Storage serves it.

``POST`` creates an upload (``Upload-Length``; ``Upload-Metadata`` carries ``bucketName``,
``objectName``, ``contentType``, ``cacheControl``, ``metadata``; ``x-upsert``), ``PATCH``
appends at ``Upload-Offset``, ``HEAD`` reports the offset, ``DELETE`` terminates. Bytes go
straight to ``tus/<id>.bin``; the offset is the file's size, so whatever arrived before a
dropped connection is kept and the client resumes from there. The file is fsynced once, when
complete (as tusd's file store does, not per chunk): a machine crash in the middle of an
upload can lose the unflushed tail of the partial file, which the client then sends again. The last chunk turns the
file into an object exactly like a normal upload (rename, then the row is committed as
the caller, under RLS).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from appkit.local.atomic import write_atomic
from appkit.local.storage import errors as E
from appkit.local.storage.api import StorageAPI
from appkit.local.storage.db import StorageCaller
from appkit.local.storage.files import (
    DEFAULT_MIME,
    Flusher,
    Ingested,
    check_mimetype,
    mime_allowed,
    normalize_cache_control,
    write_all,
)
from appkit.local.storage.paths import check_bucket_id, check_key, new_version

TUS_VERSION = "1.0.0"
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
EXPIRY_SECONDS = 24 * 60 * 60


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


def parse_upload_metadata(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, encoded = item.partition(" ")
        try:
            out[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8") if encoded else ""
        except (ValueError, UnicodeDecodeError):
            raise E.tus_error(400, f"Upload-Metadata: invalid value for {key}") from None
    return out



def _is_uint(value: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes ``²`` and ``٣``), at most 18 of them."""
    return 0 < len(value) <= 18 and value.isascii() and value.isdigit()

class TusUploads:
    def __init__(self, api: StorageAPI) -> None:
        self.api = api
        self.dir = api.store.tus
        self.locks: dict[str, asyncio.Lock] = {}

    def _paths(self, upload_id: str) -> tuple[Path, Path]:
        if not _ID_RE.match(upload_id):
            raise E.tus_error(404, "Upload not found")
        return self.dir / f"{upload_id}.json", self.dir / f"{upload_id}.bin"

    def _load(self, upload_id: str) -> tuple[dict[str, Any], Path, Path]:
        info_path, data_path = self._paths(upload_id)
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            raise E.tus_error(404, "Upload not found") from None
        return info, info_path, data_path

    def _remove(self, upload_id: str) -> None:
        info_path, data_path = self._paths(upload_id)
        info_path.unlink(missing_ok=True)
        data_path.unlink(missing_ok=True)
        self.locks.pop(upload_id, None)

    def cleanup(self) -> None:
        """Drop uploads untouched for a day and half-created leftovers (startup)."""
        now = time.time()
        for path in self.dir.glob("*"):
            upload_id = path.name.split(".", 1)[0]
            info_path = self.dir / f"{upload_id}.json"
            try:
                stale = now - path.stat().st_mtime > EXPIRY_SECONDS or not info_path.exists()
            except FileNotFoundError:
                continue
            if stale:
                path.unlink(missing_ok=True)

    def _check_version(self, request: Request) -> None:
        if request.headers.get("tus-resumable") != TUS_VERSION:
            raise E.StorageError(412, "TusError", "Unsupported TUS version", http_status=412)

    def _caller_matches(self, caller: StorageCaller, info: dict[str, Any]) -> None:
        if caller.role != "service_role" and (caller.sub != info.get("sub") or caller.role != info.get("role")):
            raise E.access_denied("This upload belongs to another user")

    async def options(self, request: Request) -> Response:
        return Response(status_code=204, headers=_headers(**{
            "Tus-Version": TUS_VERSION, "Tus-Extension": "creation,creation-with-upload,termination",
            "Tus-Max-Size": str(self.api.global_limit)}))

    def _signed_owner(self, request: Request, bucket_id: str, key: str) -> tuple[StorageCaller, bool]:
        """The owner and upsert flag of a signed-upload token sent as ``x-signature``."""
        payload = self.api.verify_url_token(request.headers.get("x-signature"), f"{bucket_id}/{key}")
        claims: dict[str, Any] = {"role": payload.get("role") or "authenticated"}
        if payload.get("owner"):
            claims["sub"] = payload["owner"]
        return StorageCaller(str(claims["role"]), claims), bool(payload.get("upsert"))

    def _auth(self, request: Request, info: dict[str, Any], *,
              signed: bool) -> tuple[StorageCaller | None, StorageCaller]:
        """(who writes the row: None = storage admin after a verified token, the row's owner)."""
        if bool(info.get("signed")) != signed:
            raise E.tus_error(404, "Upload not found")
        if signed:
            owner, _ = self._signed_owner(request, info["bucket"], info["key"])
            return None, owner
        caller = self.api.caller(request)
        self._caller_matches(caller, info)
        return caller, caller

    async def create(self, request: Request, *, signed: bool) -> Response:
        self._check_version(request)
        caller = None if signed else self.api.caller(request)
        if request.headers.get("upload-defer-length"):
            raise E.tus_error(400, "Upload-Defer-Length is not supported")
        length_raw = request.headers.get("upload-length", "")
        if not _is_uint(length_raw):
            raise E.tus_error(400, "Upload-Length header is required")
        length = int(length_raw)
        meta = parse_upload_metadata(request.headers.get("upload-metadata", ""))
        bucket_id, key = meta.get("bucketName"), meta.get("objectName")
        if not bucket_id or not key:
            raise E.tus_error(400, "Upload-Metadata must contain bucketName and objectName")
        check_bucket_id(bucket_id)
        check_key(key)
        bucket = await self.api.bucket_admin(bucket_id)
        if bucket is None:
            raise E.no_such_bucket()
        if length > self.api.limit_for(bucket):
            raise E.entity_too_large()
        mimetype = check_mimetype(meta.get("contentType") or DEFAULT_MIME)
        if not mime_allowed(mimetype, bucket.get("allowed_mime_types")):
            raise E.invalid_mime_type(mimetype)
        user_metadata = None
        if meta.get("metadata"):
            try:
                user_metadata = json.loads(meta["metadata"])
            except ValueError:
                raise E.tus_error(400, "Upload-Metadata: metadata must be JSON") from None
            if not isinstance(user_metadata, dict):
                raise E.tus_error(400, "Upload-Metadata: metadata must be a JSON object")
        if caller is None:
            owner, upsert = self._signed_owner(request, bucket_id, key)
        else:
            owner, upsert = caller, request.headers.get("x-upsert", "false").lower() == "true"
            await self.api.check_insert(caller, bucket_id, key, upsert)
        upload_id = new_version()
        info_path, data_path = self._paths(upload_id)
        data_path.touch()
        info = {"bucket": bucket_id, "key": key, "length": length, "mimetype": mimetype,
                "cacheControl": normalize_cache_control(meta.get("cacheControl")), "metadata": user_metadata,
                "upsert": upsert, "sub": owner.sub, "role": owner.role, "signed": signed, "created": time.time()}
        write_atomic(info_path, json.dumps(info).encode())
        location = f"{self._base(request)}/upload/resumable/{'sign/' if signed else ''}{upload_id}"
        headers = _headers(Location=location)
        if request.headers.get("content-type") == "application/offset+octet-stream":
            offset, _ = await self._append(request, upload_id, info, data_path, 0, caller, owner)
            headers["Upload-Offset"] = str(offset)
        elif length == 0:
            await self._finish(upload_id, info, data_path, caller, owner)
        return Response(status_code=201, headers=headers)

    @staticmethod
    def _base(request: Request) -> str:
        proto = request.headers.get("x-forwarded-proto") or request.url.scheme
        host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
        return f"{proto}://{host}{request.scope.get('root_path', '')}"

    async def head(self, request: Request, *, signed: bool) -> Response:
        upload_id = request.path_params["upload_id"]
        info, _, data_path = self._load(upload_id)
        self._auth(request, info, signed=signed)
        try:
            offset = data_path.stat().st_size
        except FileNotFoundError:
            raise E.tus_error(404, "Upload not found") from None
        return Response(status_code=200, headers=_headers(**{
            "Upload-Offset": str(offset), "Upload-Length": str(info["length"]), "Cache-Control": "no-store"}))

    async def patch(self, request: Request, *, signed: bool) -> Response:
        self._check_version(request)
        upload_id = request.path_params["upload_id"]
        info, _, data_path = self._load(upload_id)
        caller, owner = self._auth(request, info, signed=signed)
        if request.headers.get("content-type") != "application/offset+octet-stream":
            raise E.tus_error(415, "Content-Type must be application/offset+octet-stream")
        offset_raw = request.headers.get("upload-offset", "")
        if not _is_uint(offset_raw):
            raise E.tus_error(400, "Upload-Offset header is required")
        offset, _ = await self._append(request, upload_id, info, data_path, int(offset_raw), caller, owner)
        return Response(status_code=204, headers=_headers(**{"Upload-Offset": str(offset)}))

    async def _append(self, request: Request, upload_id: str, info: dict[str, Any], data_path: Path,
                      offset: int, caller: StorageCaller | None, owner: StorageCaller) -> tuple[int, bool]:
        lock = self.locks.setdefault(upload_id, asyncio.Lock())
        if lock.locked():
            raise E.StorageError(423, "ResourceLocked", "The upload is being written by another request",
                                 http_status=423)
        async with lock:
            size = data_path.stat().st_size
            if offset != size:
                raise E.tus_error(409, f"Upload-Offset {offset} does not match the current offset {size}")
            length = int(info["length"])
            fd = os.open(data_path, os.O_WRONLY)
            disconnected = False
            flusher = Flusher(fd, offset)
            try:
                os.lseek(fd, offset, os.SEEK_SET)
                try:
                    async for chunk in request.stream():
                        if offset + len(chunk) > length:
                            raise E.tus_error(413, "The upload exceeded its Upload-Length")
                        write_all(fd, chunk)
                        offset += len(chunk)
                        flusher.wrote(offset)
                except ClientDisconnect:
                    disconnected = True
                flusher.flush(offset)  # this chunk's tail: by the last chunk, little is left to sync
                if offset == length:  # once, before the object is committed (as tusd's file store:
                    await anyio.to_thread.run_sync(os.fsync, fd)  # no fsync per chunk; HEAD reads the size)
            finally:
                os.close(fd)
            if disconnected:
                # what arrived is kept; the client resumes from HEAD's offset
                raise E.tus_error(460, "Client disconnected")
            finished = offset == length
            if finished:
                await self._finish(upload_id, info, data_path, caller, owner)
            return offset, finished

    async def _finish(self, upload_id: str, info: dict[str, Any], data_path: Path, caller: StorageCaller | None,
                      owner: StorageCaller) -> None:
        temp = self.api.store.temp_path()
        os.replace(data_path, temp)
        ing = Ingested(temp, int(info["length"]), info["mimetype"], info["cacheControl"], info.get("metadata"))
        try:
            await self.api.commit_file(ing, info["bucket"], info["key"], db_caller=caller, owner=owner,
                                       upsert=bool(info.get("upsert")), method="POST")
        finally:
            temp.unlink(missing_ok=True)
            self._remove(upload_id)

    async def delete(self, request: Request, *, signed: bool) -> Response:
        self._check_version(request)
        upload_id = request.path_params["upload_id"]
        info, _, _ = self._load(upload_id)
        self._auth(request, info, signed=signed)
        lock = self.locks.get(upload_id)
        if lock is not None and lock.locked():
            raise E.StorageError(423, "ResourceLocked", "The upload is being written by another request",
                                 http_status=423)
        self._remove(upload_id)
        return Response(status_code=204, headers=_headers())
