"""Supabase Storage's HTTP API over the local database and disk."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jwt
import psycopg
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from appkit._jwt import EXPIRED_JWT
from appkit.errors import AuthError
from appkit.local.config import parse_size
from appkit.local.context import StackContext
from appkit.local.jsonbody import BadJson, has_nul, loads
from appkit.local.storage import errors as E
from appkit.local.storage.db import Caller, Conn, StorageDB
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
from appkit.local.storage.paths import DiskStore, check_bucket_id, check_key, new_version

log = logging.getLogger("appkit.local.storage")

BEARER = re.compile(r"^Bearer\s+", re.IGNORECASE)
MAX_DRAIN = 8 * 1024 * 1024
UPLOAD_SIGN_EXPIRY = 2 * 60 * 60
OBJECT_COLUMNS = ("id, bucket_id, name, owner, owner_id, version, metadata, user_metadata,"
                  " created_at, updated_at, last_accessed_at")
BUCKET_COLUMNS = ("id, name, coalesce(owner::text, owner_id, '') as owner, public, file_size_limit,"
                  " allowed_mime_types, created_at, updated_at, type::text as type")

Handler = Callable[[Request], Awaitable[Response]]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(type(value).__name__)


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, default=_default, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


async def read_json(request: Request, *, limit: int = 1024 * 1024) -> dict[str, Any]:
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise E.invalid_request("Request body too large")
    except ClientDisconnect:
        raise E.invalid_request("Client disconnected") from None
    if not body.strip():
        return {}
    try:
        data = loads(body)
    except BadJson as exc:
        raise E.invalid_request(f"Body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise E.invalid_request("Body must be a JSON object")
    if b"\\u0000" in body and has_nul(data):  # Postgres text cannot hold NUL; the strings are names and keys
        raise E.StorageError(400, "InvalidKey", "Names, keys and prefixes must not contain NUL characters")
    return data


def _str_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise E.StorageError(400, "InvalidRequest", f"body must have required property '{name}'", "Error")
        return None
    if not isinstance(value, str):
        raise E.invalid_request(f"body/{name} must be string")
    return value


def _int_field(body: dict[str, Any], name: str, default: int, *, minimum: int = 0, maximum: int = 100_000) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise E.invalid_request(f"body/{name} must be integer")
    try:
        number = int(value)
    except ValueError:
        raise E.invalid_request(f"body/{name} must be integer") from None
    if number < minimum:
        raise E.invalid_request(f"body/{name} must be >= {minimum}")
    return min(number, maximum)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_path(bucket_id: str, key: str) -> str:
    return "/".join(quote(p, safe="") for p in [bucket_id, *key.split("/")])


class StorageAPI:
    def __init__(self, ctx: StackContext, store: DiskStore) -> None:
        self.ctx = ctx
        self.store = store
        self.db: StorageDB | None = None
        self.global_limit = ctx.config.storage.file_size_limit

    @property
    def database(self) -> StorageDB:
        assert self.db is not None, "storage service not started"
        return self.db

    # -- plumbing --------------------------------------------------------------------------------------
    def caller(self, request: Request, *, allow_anon: bool = False) -> Caller:
        """The verified caller. ``allow_anon``: missing/invalid tokens fall back to anon (as Storage does)."""
        token = BEARER.sub("", request.headers.get("authorization", "")).strip()
        if not token:
            token = request.headers.get("apikey", "").strip()
        if not token:
            if allow_anon:
                return Caller("anon", {"role": "anon"}, verified=False)
            raise E.access_denied("jwt must be provided")
        try:
            claims = self.ctx.keys.verify(token)
        except AuthError as exc:
            if allow_anon:
                return Caller("anon", {"role": "anon"}, verified=False)
            claim = exc.details.get("claim") if isinstance(exc.details, dict) else None
            if claim:  # jose's message, as Supabase Storage's verifier says it
                raise E.access_denied(f'"{claim}" claim must be a number') from None
            raise E.access_denied("jwt expired" if exc.code == EXPIRED_JWT else "invalid signature") from None
        role = claims.get("role")
        if not isinstance(role, str) or not role:
            role = "anon"
        return Caller(role, claims)

    async def bucket_admin(self, bucket_id: str) -> dict[str, Any] | None:
        return await self.database.admin_one(
            "select id, public, file_size_limit, allowed_mime_types from storage.buckets where id = %s", (bucket_id,))

    def limit_for(self, bucket: dict[str, Any]) -> int:
        limit = self.global_limit
        if bucket.get("file_size_limit") is not None:
            limit = min(limit, int(bucket["file_size_limit"]))
        return limit

    async def gc(self, versions: list[Any]) -> None:
        """Delete the files of versions no row references any more (after the transaction committed)."""
        versions = [v for v in versions if v]
        if not versions:
            return
        rows = await self.database.admin_all(
            "select version from storage.objects where version = any(%s)", (versions,))
        alive = {r["version"] for r in rows}
        for v in versions:
            if v not in alive:
                self.store.remove(v)

    # -- buckets ---------------------------------------------------------------------------------------
    async def list_buckets(self, request: Request) -> Response:
        caller = self.caller(request)
        q = request.query_params
        limit = _int_field(dict(q), "limit", 100_000, maximum=100_000) if "limit" in q else None
        offset = _int_field(dict(q), "offset", 0)
        column = q.get("sortColumn", "name")
        if column not in ("id", "name", "created_at", "updated_at"):
            raise E.invalid_request("sortColumn must be one of id, name, created_at, updated_at")
        order = "desc" if q.get("sortOrder", "asc").lower() == "desc" else "asc"
        search = q.get("search")
        where, params = "", list[Any]()
        if search:
            where = "where name ilike %s"
            params.append("%" + _like_escape(search) + "%")
        query = f"select {BUCKET_COLUMNS} from storage.buckets {where} order by {column} {order}, id"
        if limit is not None:
            query += " limit %s"
            params.append(limit)
        query += " offset %s"
        params.append(offset)
        async with self.database.as_caller(caller, "GET") as conn:
            rows = await (await conn.execute(query, params)).fetchall()
        return json_response(rows)

    async def get_bucket(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        async with self.database.as_caller(caller, "GET") as conn:
            row = await (await conn.execute(
                f"select {BUCKET_COLUMNS} from storage.buckets where id = %s", (bucket_id,))).fetchone()
        if row is None:
            raise E.no_such_bucket()
        return json_response(row)

    @staticmethod
    def _bucket_options(body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "public" in body:
            if not isinstance(body["public"], bool):
                raise E.invalid_request("body/public must be boolean")
            out["public"] = body["public"]
        if "file_size_limit" in body:
            value = body["file_size_limit"]
            if value is None:
                out["file_size_limit"] = None
            else:
                try:
                    if isinstance(value, bool) or not isinstance(value, int | str):
                        raise ValueError(value)
                    out["file_size_limit"] = parse_size(value)
                except ValueError:
                    raise E.StorageError(400, "InvalidRequest",
                                         "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B") from None
                if out["file_size_limit"] <= 0:
                    out["file_size_limit"] = None
        if "allowed_mime_types" in body:
            value = body["allowed_mime_types"]
            if value is not None:
                if not isinstance(value, list) or not all(
                        isinstance(v, str) and re.match(r"^[\w.+-]+/([\w.+-]+|\*)$|^\*(/\*)?$", v.split(";")[0].strip())
                        for v in value):
                    raise E.invalid_request("body/allowed_mime_types must be a list of MIME types")
                value = value or None
            out["allowed_mime_types"] = value
        return out

    async def create_bucket(self, request: Request) -> Response:
        caller = self.caller(request)
        body = await read_json(request)
        name = _str_field(body, "name")
        assert name is not None
        bucket_id = _str_field(body, "id", required=False) or name
        check_bucket_id(bucket_id)
        check_bucket_id(name)
        opts = self._bucket_options(body)
        try:
            async with self.database.as_caller(caller, "POST") as conn:
                await conn.execute(
                    "insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit,"
                    " allowed_mime_types) values (%s, %s, %s, %s, %s, %s, %s)",
                    (bucket_id, name, caller.owner_uuid, caller.sub, opts.get("public", False),
                     opts.get("file_size_limit"), opts.get("allowed_mime_types")))
        except E.StorageError as exc:
            if exc.code == "KeyAlreadyExists":
                raise E.bucket_exists() from None
            raise
        return json_response({"name": bucket_id})

    async def update_bucket(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        body = await read_json(request)
        opts = self._bucket_options(body)
        async with self.database.as_caller(caller, "PUT") as conn:
            sets = ", ".join(f"{k} = %s" for k in opts)
            query = f"update storage.buckets set {sets + ', ' if sets else ''}updated_at = now() where id = %s"
            cur = await conn.execute(query, [*opts.values(), bucket_id])
            if cur.rowcount == 0:
                raise E.no_such_bucket()
        return json_response({"message": "Successfully updated"})

    async def empty_bucket(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        async with self.database.as_caller(caller, "POST") as conn:
            found = await (await conn.execute("select 1 from storage.buckets where id = %s", (bucket_id,))).fetchone()
            if found is None:
                raise E.no_such_bucket()
            rows = await (await conn.execute(
                "delete from storage.objects where bucket_id = %s returning version", (bucket_id,))).fetchall()
        await self.gc([r["version"] for r in rows])
        return json_response({"message": "Successfully emptied"})

    async def delete_bucket(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        async with self.database.as_caller(caller, "DELETE") as conn:
            try:
                cur = await conn.execute("delete from storage.buckets where id = %s", (bucket_id,))
            except psycopg.errors.ForeignKeyViolation:
                raise E.bucket_not_empty() from None
            if cur.rowcount == 0:
                raise E.no_such_bucket()
        return json_response({"message": "Successfully deleted"})

    # -- uploads ---------------------------------------------------------------------------------------
    async def _check_insert(self, caller: Caller, bucket_id: str, key: str, upsert: bool) -> None:
        """Supabase's ``testPermission``: run the insert as the caller, then roll it back."""
        async with self.database.as_caller(caller, "POST") as conn, conn.transaction(force_rollback=True):
            await self._insert_row(conn, bucket_id, key, caller, new_version(), {}, None, upsert)

    @staticmethod
    async def _insert_row(conn: Conn, bucket_id: str, key: str, owner: Caller, version: str,
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

    async def store_upload(self, request: Request, bucket_id: str, key: str, *, db_caller: Caller | None,
                           owner: Caller, upsert: bool, method: str) -> dict[str, Any]:
        """Receive the body and store it; ``db_caller`` None writes as the storage admin (signed upload)."""
        check_bucket_id(bucket_id)
        check_key(key)
        stream = request.stream()
        try:
            bucket = await self.bucket_admin(bucket_id)
            if bucket is None:
                raise E.no_such_bucket()
            if db_caller is not None:
                await self._check_insert(db_caller, bucket_id, key, upsert)
            elif not upsert:
                exists = await self.database.admin_one(
                    "select 1 from storage.objects where bucket_id = %s and name = %s", (bucket_id, key))
                if exists:
                    raise E.key_exists()
            ing = await self._ingest(request, stream, bucket)
        except E.StorageError:
            await _drain(stream)
            raise
        return await self.commit_file(ing, bucket_id, key, db_caller=db_caller, owner=owner, upsert=upsert,
                                      method=method)

    async def commit_file(self, ing: Ingested, bucket_id: str, key: str, *, db_caller: Caller | None,
                          owner: Caller, upsert: bool, method: str) -> dict[str, Any]:
        """Temp file (already fsynced) -> final name -> row committed; on any failure nothing remains."""
        version = new_version()
        now = datetime.now(UTC)
        metadata = {
            "eTag": f'"{version}"', "size": ing.size, "mimetype": ing.mimetype,
            "cacheControl": ing.cache_control, "lastModified": _default(now),
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

    # -- reading ---------------------------------------------------------------------------------------
    async def find_object(self, caller: Caller | None, bucket_id: str, key: str) -> dict[str, Any]:
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
                headers["Content-Disposition"] = content_disposition(download or row["name"].rsplit("/", 1)[-1])
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

    # -- listing ---------------------------------------------------------------------------------------
    async def list_objects(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        body = await read_json(request)
        prefix = _str_field(body, "prefix", required=False) or ""
        search = _str_field(body, "search", required=False) or ""
        limit = _int_field(body, "limit", 100, minimum=1)
        offset = _int_field(body, "offset", 0, maximum=10**9)
        sort = body.get("sortBy") or {}
        if not isinstance(sort, dict):
            raise E.invalid_request("body/sortBy must be object")
        column = sort.get("column", "name")
        if column not in ("name", "updated_at", "created_at", "last_accessed_at", "id"):
            raise E.invalid_request("body/sortBy/column is not a sortable column")
        order = "desc" if str(sort.get("order", "asc")).lower() == "desc" else "asc"
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        level = prefix.count("/") + 1
        pattern = _like_escape(prefix) + _like_escape(search) + "%"
        nulls = "nulls last" if order == "asc" else "nulls first"
        sort = (f'name collate "C" {order}' if column == "name"
                else f'{column} {order} {nulls}, name collate "C" {order}')
        query = f"""
            with m as (
              select name, id, updated_at, created_at, last_accessed_at, metadata, path_tokens
              from storage.objects
              where bucket_id = %(b)s and lower(name) like lower(%(p)s) and name ilike %(p)s
            ), l as (
              select distinct on (path_tokens[%(lv)s]) path_tokens[%(lv)s] as name, null::uuid as id,
                     null::timestamptz as updated_at, null::timestamptz as created_at,
                     null::timestamptz as last_accessed_at, null::jsonb as metadata
              from m where array_length(path_tokens, 1) > %(lv)s
              union all
              select path_tokens[%(lv)s], id, updated_at, created_at, last_accessed_at, metadata
              from m where array_length(path_tokens, 1) = %(lv)s
            )
            select coalesce(json_agg(x), '[]'::json)::text as body from (
              select * from l order by {sort}
              limit %(lim)s offset %(off)s
            ) x
        """
        async with self.database.as_caller(caller, "POST") as conn:
            row = await (await conn.execute(query, {"b": bucket_id, "p": pattern, "lv": level, "lim": limit,
                                                    "off": offset})).fetchone()
        assert row is not None
        return Response(row["body"].encode(), media_type="application/json")

    async def list_objects_v2(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        body = await read_json(request)
        prefix = _str_field(body, "prefix", required=False) or ""
        limit = _int_field(body, "limit", 1000, minimum=1, maximum=10_000)
        cursor_raw = _str_field(body, "cursor", required=False)
        delimited = bool(body.get("with_delimiter"))
        sort = body.get("sortBy") or {}
        if not isinstance(sort, dict):
            raise E.invalid_request("body/sortBy must be object")
        column = sort.get("column", "name")
        if column not in ("name", "updated_at", "created_at"):
            raise E.invalid_request("body/sortBy/column must be equal to one of the allowed values")
        order = "desc" if str(sort.get("order", "asc")).lower() == "desc" else "asc"
        after_key: str | None = None
        offset = 0
        if cursor_raw:
            try:
                cur = json.loads(base64.urlsafe_b64decode(cursor_raw + "=" * (-len(cursor_raw) % 4)))
                after_key = cur.get("k")
                offset = int(cur.get("o", 0))
            except (ValueError, TypeError, AttributeError):
                raise E.invalid_request("Invalid cursor") from None
        keyset = column == "name" and order == "asc"
        sort_expr = f'k collate "C" {order}' if column == "name" else f"{column} {order} nulls last, k collate \"C\""
        params: dict[str, Any] = {"b": bucket_id, "pat": _like_escape(prefix) + "%", "pl": len(prefix),
                                  "lim": limit, "lim1": limit + 1, "after": after_key if keyset else None,
                                  "off": 0 if keyset else offset}
        entries = """
            with m as (
              select name, id, updated_at, created_at, last_accessed_at, metadata,
                     strpos(substr(name, %(pl)s + 1), '/') as slash
              from storage.objects where bucket_id = %(b)s and (name collate "C") like %(pat)s
            ), e as (
        """
        if delimited:
            entries += """
              select distinct on (left(name, %(pl)s + slash)) left(name, %(pl)s + slash) as k, true as folder,
                     null::uuid as id, null::timestamptz as updated_at, null::timestamptz as created_at,
                     null::timestamptz as last_accessed_at, null::jsonb as metadata
              from m where slash > 0
              union all
              select name, false, id, updated_at, created_at, last_accessed_at, metadata from m where slash = 0
            )"""
        else:
            entries += """
              select name as k, false as folder, id, updated_at, created_at, last_accessed_at, metadata from m
            )"""
        query = entries + f"""
            select count(*) > %(lim)s as has_next,
                   max(k) filter (where rn = %(lim)s) as last_key,
                   coalesce(json_agg(json_build_object('key', k, 'name', k) order by rn)
                            filter (where folder and rn <= %(lim)s), '[]'::json)::text as folders,
                   coalesce(json_agg(json_build_object(
                              'id', id, 'key', k, 'name', k, 'updated_at', updated_at, 'created_at', created_at,
                              'last_accessed_at', last_accessed_at, 'metadata', metadata) order by rn)
                            filter (where not folder and rn <= %(lim)s), '[]'::json)::text as objects
            from (
              select p.*, row_number() over () as rn from (
                select * from e where (%(after)s::text is null or k collate "C" > %(after)s)
                order by {sort_expr} limit %(lim1)s offset %(off)s
              ) p
            ) t
        """
        async with self.database.as_caller(caller, "POST") as conn:
            row = await (await conn.execute(query, params)).fetchone()
        assert row is not None
        has_next = bool(row["has_next"])
        cursor_json = ""
        if has_next:
            token = {"k": row["last_key"]} if keyset else {"o": offset + limit}
            cursor_json = ',"nextCursor":' + json.dumps(
                base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("="))
        body_text = (f'{{"hasNext":{"true" if has_next else "false"},"folders":{row["folders"]},'
                     f'"objects":{row["objects"]}{cursor_json}}}')
        return Response(body_text.encode(), media_type="application/json")

    # -- removing, moving, copying -----------------------------------------------------------------------
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

    async def _transfer(self, request: Request) -> tuple[Caller, dict[str, Any], str, str, str, str]:
        """The shared part of move and copy: caller, body, source bucket/key, target bucket/key."""
        caller = self.caller(request)
        body = await read_json(request)
        bucket_id, source, dest = (_str_field(body, n) for n in ("bucketId", "sourceKey", "destinationKey"))
        assert bucket_id is not None and source is not None and dest is not None
        dest_bucket = _str_field(body, "destinationBucket", required=False) or bucket_id
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
        metadata["lastModified"] = _default(datetime.now(UTC))
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

    # -- signed URLs -----------------------------------------------------------------------------------
    def _sign(self, claims: dict[str, Any], expires_in: int) -> str:
        now = int(time.time())
        return jwt.encode({**claims, "iat": now, "exp": now + expires_in}, self.ctx.keys.secret, algorithm="HS256")

    def _verify_token(self, token: str | None, path: str) -> dict[str, Any]:
        if not token:
            raise E.StorageError(400, "InvalidRequest", "querystring must have required property 'token'", "Error")
        try:
            payload: dict[str, Any] = jwt.decode(token, self.ctx.keys.secret, algorithms=["HS256"],
                                                 options={"require": ["exp"]})
        except jwt.ExpiredSignatureError:
            raise E.invalid_jwt("jwt expired") from None
        except jwt.PyJWTError:
            raise E.invalid_jwt("invalid signature") from None
        if payload.get("url") != path:
            raise E.invalid_signature()
        return payload

    @staticmethod
    def _expires_in(body: dict[str, Any]) -> int:
        value = body.get("expiresIn")
        try:
            if value is None or isinstance(value, bool):
                raise ValueError
            expires = int(value)
        except (TypeError, ValueError):
            raise E.StorageError(400, "InvalidRequest", "body/expiresIn must be integer >= 1", "Error") from None
        if expires < 1:
            raise E.StorageError(400, "InvalidRequest", "body/expiresIn must be >= 1", "Error")
        return expires

    async def sign_one(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        check_key(key)
        body = await read_json(request)
        expires = self._expires_in(body)
        await self.find_object(caller, bucket_id, key)
        claims: dict[str, Any] = {"url": f"{bucket_id}/{key}"}
        if isinstance(body.get("transform"), dict):
            claims["transformations"] = body["transform"]
        token = self._sign(claims, expires)
        return json_response({"signedURL": f"/object/sign/{_encode_path(bucket_id, key)}?token={token}"})

    async def sign_many(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        body = await read_json(request)
        expires = self._expires_in(body)
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or len(paths) > 1000:
            raise E.StorageError(400, "InvalidRequest", "body/paths must be an array of strings", "Error")
        async with self.database.as_caller(caller, "POST") as conn:
            rows = await (await conn.execute(
                "select name from storage.objects where bucket_id = %s and name = any(%s)",
                (bucket_id, paths))).fetchall()
        found = {r["name"] for r in rows}
        out = []
        for p in paths:
            if p in found:
                token = self._sign({"url": f"{bucket_id}/{p}"}, expires)
                out.append({"error": None, "path": p,
                            "signedURL": f"/object/sign/{_encode_path(bucket_id, p)}?token={token}"})
            else:
                out.append({"error": "Either the object does not exist or you do not have access to it",
                            "path": p, "signedURL": None})
        return json_response(out)

    async def download_signed(self, request: Request) -> Response:
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        self._verify_token(request.query_params.get("token"), f"{bucket_id}/{key}")
        check_key(key)
        row = await self.find_object(None, bucket_id, key)
        return self.serve(request, row, head=request.method == "HEAD")

    async def sign_upload(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        check_bucket_id(bucket_id)
        check_key(key)
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        if await self.bucket_admin(bucket_id) is None:
            raise E.no_such_bucket()
        await self._check_insert(caller, bucket_id, key, upsert)
        token = self._sign({"owner": caller.sub, "role": caller.role, "url": f"{bucket_id}/{key}",
                            "upsert": upsert}, UPLOAD_SIGN_EXPIRY)
        return json_response({"url": f"/object/upload/sign/{_encode_path(bucket_id, key)}?token={token}",
                              "token": token})

    async def upload_signed(self, request: Request) -> Response:
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        try:
            payload = self._verify_token(request.query_params.get("token"), f"{bucket_id}/{key}")
        except E.StorageError:
            await _drain(request.stream())
            raise
        owner_claims: dict[str, Any] = {"role": payload.get("role") or "authenticated"}
        if payload.get("owner"):
            owner_claims["sub"] = payload["owner"]
        owner = Caller(str(owner_claims["role"]), owner_claims)
        result = await self.store_upload(request, bucket_id, key, db_caller=None, owner=owner,
                                         upsert=bool(payload.get("upsert")), method="PUT")
        return json_response({"Key": result["Key"], "Id": result["Id"], "url": f"{bucket_id}/{key}"})


async def _drain(stream: AsyncIterator[bytes]) -> None:
    """Read (and drop) what is left of a rejected body, so the client gets the error reply cleanly."""
    seen = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > MAX_DRAIN:
                break
    except (ClientDisconnect, RuntimeError):
        pass
