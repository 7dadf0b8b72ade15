"""Buckets: list, get, create, update, empty, delete."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import Response

from appkit.local.config import parse_size
from appkit.local.storage import errors as E
from appkit.local.storage.base import StorageBase
from appkit.local.storage.http import int_field, json_response, like_escape, read_json, str_field
from appkit.local.storage.paths import check_bucket_id

BUCKET_COLUMNS = ("id, name, coalesce(owner::text, owner_id, '') as owner, public, file_size_limit,"
                  " allowed_mime_types, created_at, updated_at, type::text as type")


class Buckets(StorageBase):
    """The ``/bucket`` endpoints."""

    async def list_buckets(self, request: Request) -> Response:
        caller = self.caller(request)
        q = request.query_params
        limit = int_field(dict(q), "limit", 100_000, maximum=100_000) if "limit" in q else None
        offset = int_field(dict(q), "offset", 0)
        column = q.get("sortColumn", "name")
        if column not in ("id", "name", "created_at", "updated_at"):
            raise E.invalid_request("sortColumn must be one of id, name, created_at, updated_at")
        order = "desc" if q.get("sortOrder", "asc").lower() == "desc" else "asc"
        search = q.get("search")
        where, params = "", list[Any]()
        if search:
            where = "where name ilike %s"
            params.append("%" + like_escape(search) + "%")
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
        name = str_field(body, "name")
        assert name is not None
        bucket_id = str_field(body, "id", required=False) or name
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
