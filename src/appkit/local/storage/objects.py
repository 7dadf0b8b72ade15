"""Objects: upload (with the insert-permission check), serve, info, delete, move and copy."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appkit.local.storage import errors as E
from appkit.local.storage.base import StorageBase
from appkit.local.storage.db import Conn, StorageCaller
from appkit.local.storage.files import (
    DEFAULT_MIME,
    FileResponse,
    Ingested,
    check_mimetype,
    content_disposition,
    http_date,
    ingest_multipart,
    ingest_raw,
    mime_allowed,
    normalize_cache_control,
    parse_range,
    parse_user_metadata,
)
from appkit.local.storage.http import drain, json_default, json_response, read_json, str_field
from appkit.local.storage.paths import check_bucket_id, check_key, new_version

OBJECT_COLUMNS = ("id, bucket_id, name, owner, owner_id, version, metadata, user_metadata,"
                  " created_at, updated_at, last_accessed_at")


class Objects(StorageBase):
    """The ``/object`` endpoints for one object or a list of keys."""

    async def check_insert(self, caller: StorageCaller, bucket_id: str, key: str, upsert: bool) -> None:
        """Supabase's ``testPermission``: run the insert as the caller, then roll it back."""
        async with self.database.as_caller(caller, "POST") as conn, conn.transaction(force_rollback=True):
            await self._insert_row(conn, bucket_id, key, caller, new_version(), {}, None, upsert)

    @staticmethod
    async def _insert_row(conn: Conn, bucket_id: str, key: str, owner: StorageCaller, version: str,
                          metadata: dict[str, Any], user_metadata: dict[str, Any] | None, upsert: bool) -> str:
        obj_id = str(uuid.uuid4())
        query = ("insert into storage.objects (id, bucket_id, name, owner, owner_id, metadata, user_metadata,"
                 " version) values (%s, %s, %s, %s, %s, %s, %s, %s)")
        params = (obj_id, bucket_id, key, owner.owner_uuid, owner.sub, json.dumps(metadata),
                  None if user_metadata is None else json.dumps(user_metadata), version)
        if not upsert:
            await conn.execute(query, params)
            return obj_id
        query += (" on conflict (bucket_id, name) do update set owner = excluded.owner,"
                  " owner_id = excluded.owner_id, metadata = excluded.metadata,"
                  " user_metadata = excluded.user_metadata, version = excluded.version,"
                  " updated_at = now(), last_accessed_at = now() returning id")
        row = await (await conn.execute(query, params)).fetchone()
        return str(row["id"]) if row else obj_id

    async def _ingest(self, request: Request, chunks: AsyncIterator[bytes], bucket: dict[str, Any]) -> Ingested:
        """Receive the body into a fsynced temp file; every header is validated before a byte is written."""
        limit = self.limit_for(bucket)
        allowed = bucket.get("allowed_mime_types")
        ctype = request.headers.get("content-type", "")
        header_metadata = None
        if request.headers.get("x-metadata"):
            header_metadata = parse_user_metadata(request.headers["x-metadata"], b64=True)
        temp = self.store.temp_path()
        if ctype.lower().startswith("multipart/form-data"):
            ing = await ingest_multipart(chunks, temp, content_type=ctype, limit=limit, allowed=allowed)
            if ing.user_metadata is None:
                ing.user_metadata = header_metadata
            return ing
        mimetype = check_mimetype(ctype or DEFAULT_MIME)
        if not mime_allowed(mimetype, allowed):
            raise E.invalid_mime_type(mimetype)
        length = request.headers.get("content-length")
        if length and length.isascii() and length.isdigit() and len(length) <= 18 and int(length) > limit:
            raise E.entity_too_large()
        ing = await ingest_raw(chunks, temp, mimetype=mimetype, cache_control=request.headers.get("cache-control"),
                               limit=limit)
        ing.user_metadata = header_metadata
        return ing

    async def store_upload(self, request: Request, bucket_id: str, key: str, *, db_caller: StorageCaller | None,
                           owner: StorageCaller, upsert: bool, method: str) -> dict[str, Any]:
        """Receive the body and store it; ``db_caller`` None writes as the storage admin (signed upload)."""
        check_bucket_id(bucket_id)
        check_key(key)
        stream = request.stream()
        try:
            bucket = await self.bucket_admin(bucket_id)
            if bucket is None:
                raise E.no_such_bucket()
            if db_caller is not None:
                await self.check_insert(db_caller, bucket_id, key, upsert)
            elif not upsert:
                exists = await self.database.admin_one(
                    "select 1 from storage.objects where bucket_id = %s and name = %s", (bucket_id, key))
                if exists:
                    raise E.key_exists()
            ing = await self._ingest(request, stream, bucket)
        except E.StorageError:
            await drain(stream)
            raise
        return await self.commit_file(ing, bucket_id, key, db_caller=db_caller, owner=owner, upsert=upsert,
                                      method=method)

    async def commit_file(self, ing: Ingested, bucket_id: str, key: str, *, db_caller: StorageCaller | None,
                          owner: StorageCaller, upsert: bool, method: str) -> dict[str, Any]:
        """Temp file (already fsynced) -> final name -> row committed; on any failure nothing remains."""
        version = new_version()
        now = datetime.now(UTC)
        metadata = {
            "eTag": f'"{version}"', "size": ing.size, "mimetype": ing.mimetype,
            "cacheControl": ing.cache_control, "lastModified": json_default(now),
            "contentLength": ing.size, "httpStatusCode": 200,
        }
        old = None
        try:
            if upsert:
                old = await self.database.admin_one(
                    "select version from storage.objects where bucket_id = %s and name = %s", (bucket_id, key))
            self.store.install(ing.temp, version)
        except BaseException:
            ing.temp.unlink(missing_ok=True)
            raise
        try:
            if db_caller is None:
                async with self.database.as_admin() as conn:
                    obj_id = await self._insert_row(conn, bucket_id, key, owner, version, metadata,
                                                    ing.user_metadata, upsert)
            else:
                async with self.database.as_caller(db_caller, method) as conn:
                    obj_id = await self._insert_row(conn, bucket_id, key, owner, version, metadata,
                                                    ing.user_metadata, upsert)
        except BaseException:
            self.store.remove(version)
            raise
        if old is not None:
            await self.gc([old["version"]])
        return {"Id": obj_id, "Key": f"{bucket_id}/{key}"}

    async def upload(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        upsert = True if request.method == "PUT" else request.headers.get("x-upsert", "false").lower() == "true"
        result = await self.store_upload(request, bucket_id, key, db_caller=caller, owner=caller, upsert=upsert,
                                         method=request.method)
        return json_response(result)

    async def find_object(self, caller: StorageCaller | None, bucket_id: str, key: str) -> dict[str, Any]:
        query = f"select {OBJECT_COLUMNS} from storage.objects where bucket_id = %s and name = %s"
        if caller is None:
            row = await self.database.admin_one(query, (bucket_id, key))
        else:
            async with self.database.as_caller(caller, "GET") as conn:
                row = await (await conn.execute(query, (bucket_id, key))).fetchone()
        if row is None:
            raise E.no_such_key()
        return row

    def serve(self, request: Request, row: dict[str, Any], *, head: bool) -> Response:
        path = self.store.path_for(row.get("version"))
        if path is None:
            raise E.no_such_key()
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise E.no_such_key() from None
        try:
            st = os.fstat(fd)
            size = st.st_size
            meta = row.get("metadata") or {}
            etag = meta.get("eTag") or f'"{row.get("version")}"'
            headers = {
                "Content-Type": str(meta.get("mimetype") or DEFAULT_MIME),
                "Cache-Control": str(meta.get("cacheControl") or "no-cache"),
                "ETag": str(etag),
                "Last-Modified": http_date(st.st_mtime),
                "Accept-Ranges": "bytes",
            }
            download = request.query_params.get("download")
            if download is not None:
                headers["Content-Disposition"] = content_disposition(download)
            if request.headers.get("if-none-match") == etag:
                os.close(fd)
                return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
            try:
                rng = parse_range(request.headers.get("range"), size)
            except E.StorageError:
                os.close(fd)
                err = E.StorageError(416, "InvalidRange", "invalid range provided", "invalid_range")
                return JSONResponse(err.body(), status_code=416,
                                    headers={"Content-Range": f"bytes */{size}"})
            if rng is None:
                headers["Content-Length"] = str(size)
                return FileResponse(fd, start=0, length=size, status_code=200, headers=headers, head=head)
            start, end = rng
            headers["Content-Length"] = str(end - start + 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return FileResponse(fd, start=start, length=end - start + 1, status_code=206, headers=headers, head=head)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise

    async def download(self, request: Request) -> Response:
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        if request.method == "HEAD":
            row = await self._find_for_info(request, bucket_id, key, allow_anon=True)
            return self.serve(request, row, head=True)
        caller = self.caller(request)
        check_key(key)
        row = await self.find_object(caller, bucket_id, key)
        return self.serve(request, row, head=False)

    async def _find_for_info(self, request: Request, bucket_id: str, key: str, *, allow_anon: bool
                             ) -> dict[str, Any]:
        """Storage's info/HEAD lookup: public buckets are read as the storage admin, others under RLS."""
        caller = self.caller(request, allow_anon=allow_anon)
        check_key(key)
        bucket = await self.bucket_admin(bucket_id)
        authenticated = caller.verified
        if bucket is None or (not authenticated and not bucket["public"]):
            raise E.no_such_bucket()
        return await self.find_object(None if bucket["public"] else caller, bucket_id, key)

    async def download_public(self, request: Request) -> Response:
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        check_key(key)
        bucket = await self.bucket_admin(bucket_id)
        if bucket is None or not bucket["public"]:
            raise E.no_such_bucket()
        row = await self.find_object(None, bucket_id, key)
        return self.serve(request, row, head=request.method == "HEAD")

    @staticmethod
    def info_json(row: dict[str, Any]) -> dict[str, Any]:
        meta = row.get("metadata") or {}
        return {
            "id": row["id"], "name": row["name"], "version": row.get("version"), "bucket_id": row["bucket_id"],
            "size": meta.get("size"), "content_type": meta.get("mimetype"), "cache_control": meta.get("cacheControl"),
            "etag": meta.get("eTag"), "metadata": row.get("user_metadata"), "last_modified": meta.get("lastModified"),
            "created_at": row.get("created_at"), "updated_at": row.get("updated_at"),
            "last_accessed_at": row.get("last_accessed_at"),
        }

    async def _info(self, request: Request, mode: str) -> Response:
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        if mode == "public":
            check_key(key)
            bucket = await self.bucket_admin(bucket_id)
            if bucket is None or not bucket["public"]:
                raise E.no_such_bucket()
            row = await self.find_object(None, bucket_id, key)
        else:
            row = await self._find_for_info(request, bucket_id, key, allow_anon=mode == "default")
        return json_response(self.info_json(row))

    async def info(self, request: Request) -> Response:
        return await self._info(request, "default")

    async def info_public(self, request: Request) -> Response:
        return await self._info(request, "public")

    async def info_authenticated(self, request: Request) -> Response:
        return await self._info(request, "authenticated")

    async def delete_one(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        check_key(key)
        async with self.database.as_caller(caller, "DELETE") as conn:
            rows = await (await conn.execute(
                "delete from storage.objects where bucket_id = %s and name = %s returning version",
                (bucket_id, key))).fetchall()
        if not rows:
            raise E.no_such_key()
        await self.gc([r["version"] for r in rows])
        return json_response({"message": "Successfully deleted"})

    async def delete_many(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        body = await read_json(request)
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
            raise E.StorageError(400, "InvalidRequest", "body/prefixes must be a non-empty array of strings", "Error")
        if len(prefixes) > 1000:
            raise E.invalid_request("body/prefixes must NOT have more than 1000 items")
        async with self.database.as_caller(caller, "DELETE") as conn:
            rows = await (await conn.execute(
                f"delete from storage.objects where bucket_id = %s and name = any(%s) returning {OBJECT_COLUMNS}",
                (bucket_id, prefixes))).fetchall()
        await self.gc([r["version"] for r in rows])
        return json_response(rows)

    async def _transfer(self, request: Request) -> tuple[StorageCaller, dict[str, Any], str, str, str, str]:
        """The shared part of move and copy: caller, body, source bucket/key, target bucket/key."""
        caller = self.caller(request)
        body = await read_json(request)
        bucket_id, source, dest = (str_field(body, n) for n in ("bucketId", "sourceKey", "destinationKey"))
        assert bucket_id is not None and source is not None and dest is not None
        dest_bucket = str_field(body, "destinationBucket", required=False) or bucket_id
        check_key(source)
        check_key(dest)
        if await self.bucket_admin(dest_bucket) is None:
            raise E.no_such_bucket()
        return caller, body, bucket_id, source, dest_bucket, dest

    async def move(self, request: Request) -> Response:
        caller, _, bucket_id, source, dest_bucket, dest = await self._transfer(request)
        async with self.database.as_caller(caller, "POST") as conn:
            cur = await conn.execute(
                "update storage.objects set bucket_id = %s, name = %s, owner = %s, owner_id = %s,"
                " updated_at = now(), last_accessed_at = now() where bucket_id = %s and name = %s",
                (dest_bucket, dest, caller.owner_uuid, caller.sub, bucket_id, source))
            if cur.rowcount == 0:
                raise E.no_such_key()
        return json_response({"message": "Successfully moved"})

    async def copy(self, request: Request) -> Response:
        caller, body, bucket_id, source, dest_bucket, dest = await self._transfer(request)
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        src = await self.find_object(caller, bucket_id, source)
        user_metadata = src.get("user_metadata")
        if body.get("copyMetadata") is False:
            user_metadata = None
        if request.headers.get("x-metadata"):
            user_metadata = parse_user_metadata(request.headers["x-metadata"], b64=True)
        metadata = dict(src.get("metadata") or {})
        override = body.get("metadata")
        if isinstance(override, dict):
            if isinstance(override.get("mimetype"), str):
                metadata["mimetype"] = check_mimetype(override["mimetype"])
            if isinstance(override.get("cacheControl"), str):
                metadata["cacheControl"] = normalize_cache_control(override["cacheControl"])
        version = new_version()
        metadata["eTag"] = f'"{version}"'
        metadata["lastModified"] = json_default(datetime.now(UTC))
        old = await self.database.admin_one(
            "select version from storage.objects where bucket_id = %s and name = %s", (dest_bucket, dest))
        if self.store.link(str(src.get("version")), version) is None:
            raise E.no_such_key()
        try:
            async with self.database.as_caller(caller, "POST") as conn:
                obj_id = await self._insert_row(conn, dest_bucket, dest, caller, version, metadata, user_metadata,
                                                upsert)
        except BaseException:
            self.store.remove(version)
            raise
        if old is not None and upsert:
            await self.gc([old["version"]])
        return json_response({"Id": obj_id, "Key": f"{dest_bucket}/{dest}", "id": obj_id, "name": dest,
                              "bucket_id": dest_bucket, "version": version, "metadata": user_metadata})
