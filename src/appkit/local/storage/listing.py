"""Listing objects: ``/object/list`` (folders and files under a prefix) and ``/object/list-v2`` (cursor pages)."""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from appkit.local.storage import errors as E
from appkit.local.storage.base import StorageBase
from appkit.local.storage.http import int_field, like_escape, read_json, str_field


class Listing(StorageBase):
    """The two listing endpoints."""

    async def list_objects(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        body = await read_json(request)
        prefix = str_field(body, "prefix", required=False) or ""
        search = str_field(body, "search", required=False) or ""
        limit = int_field(body, "limit", 100, minimum=1)
        offset = int_field(body, "offset", 0, maximum=10**9)
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
        pattern = like_escape(prefix) + like_escape(search) + "%"
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
        prefix = str_field(body, "prefix", required=False) or ""
        limit = int_field(body, "limit", 1000, minimum=1, maximum=10_000)
        cursor_raw = str_field(body, "cursor", required=False)
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
        params: dict[str, Any] = {"b": bucket_id, "pat": like_escape(prefix) + "%", "pl": len(prefix),
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
        # Supabase Storage's shapes: with a delimiter, search_v2's rows (``key`` = the name's
        # segment at the prefix's depth, folders with null columns); without, the objects' own
        # columns and no ``key``
        if delimited:
            object_json = ("json_build_object('key', split_part(k, '/', %(lv)s), 'name', k, 'id', id,"
                           " 'updated_at', updated_at, 'created_at', created_at,"
                           " 'last_accessed_at', last_accessed_at, 'metadata', metadata)")
        else:
            object_json = ("json_build_object('id', id, 'name', k, 'metadata', metadata, 'updated_at', updated_at,"
                           " 'created_at', created_at, 'last_accessed_at', last_accessed_at)")
        params["lv"] = len(prefix.split("/"))
        query = entries + f"""
            select count(*) > %(lim)s as has_next,
                   max(k) filter (where rn = %(lim)s) as last_key,
                   coalesce(json_agg(json_build_object('key', split_part(k, '/', %(lv)s), 'name', k, 'id', null,
                              'updated_at', null, 'created_at', null, 'last_accessed_at', null, 'metadata', null)
                              order by rn)
                            filter (where folder and rn <= %(lim)s), '[]'::json)::text as folders,
                   coalesce(json_agg({object_json} order by rn)
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
