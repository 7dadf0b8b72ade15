"""Reads: planning (with a plan cache for repeated shapes), running, streaming large results, counts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from starlette.types import Send

from appkit.local.rest.builder import (
    Params,
    ReadSQL,
    Source,
    read_sql,
)
from appkit.local.rest.errors import RestError, from_pg
from appkit.local.rest.executor import SETUP_SQL, Executor, RestCaller, roll_back
from appkit.local.rest.headers import Prefer
from appkit.local.rest.http import JSON_CT, RestRequest, RestResponse, Streamer, send_error
from appkit.local.rest.negotiation import Negotiation, apply_response_gucs, plan_request, singular_error
from appkit.local.rest.parser import query_pairs
from appkit.local.rest.plan import Plan, parse_plan
from appkit.local.rest.schema import SchemaCache

#: reads allowed to return more rows than this are streamed from a server-side cursor
STREAM_ROWS = 5000


STREAM_BATCH = 2000


#: filters whose value is bound verbatim as one parameter (cacheable request shapes)
_SIMPLE_FILTER = re.compile(r"^((?:not\.)?(?:eq|neq|gt|gte|lt|lte|isdistinct|match|imatch)\.)(.*)$", re.S)


_RESERVED_KEYS = {"select", "order", "limit", "offset", "columns", "on_conflict", "or", "and", "apikey"}


@dataclass
class ReadPlan:
    rs: ReadSQL
    prefer: Prefer
    kind: str
    strip: bool
    offset: int
    stream_rs: ReadSQL | None  # when the result may be large: the streaming statement


def _find_slots(rs: ReadSQL, n: int) -> list[str] | None:
    slots: list[str] = []
    for i in range(n):
        sentinel = f"\x00pgrst{i}\x00"
        found = [k for k, v in rs.params.items() if v == sentinel]
        if len(found) != 1:
            return None
        slots.append(found[0])
    return slots


def _substitute(rs: ReadSQL, slots: list[str], values: list[str]) -> ReadSQL:
    params = dict(rs.params)
    for slot, value in zip(slots, values, strict=True):
        params[slot] = value
    return ReadSQL(rs.sql, rs.count_from, params)


class Reads(Executor, Negotiation):
    """GET and HEAD on tables and views."""

    _read_plans: dict[Any, tuple[ReadPlan, list[str], list[str]]]
    aggregates_enabled: bool

    def _plan_read(self, req: RestRequest, cache: SchemaCache, source: Source, plan: Plan | None,
                   params: Params | None, pairs: list[tuple[str, str]] | None = None) -> ReadPlan:
        plan = plan or parse_plan(req, pairs=pairs)
        prefer = self._prefer(req)
        kind, strip = self._accept(req)
        params = params or Params()
        limit, offset = self._limits(req, plan)
        streamable = (kind == "json" and req.method in ("GET", "HEAD") and prefer.count is None
                      and (limit is None or limit > STREAM_ROWS))
        stream_rs: ReadSQL | None = None
        if streamable:
            # probe with LIMIT STREAM_ROWS + 1 through the ordinary path; only a result that
            # large is re-run through the streaming cursor
            sparams = Params()
            sparams.values = dict(params.values)
            stream_rs = read_sql(cache, source, plan, sparams, kind=kind, strip=strip, count=None, limit=limit,
                                 offset=offset, max_rows=self.max_rows, stream=True,
                                 aggregates=self.aggregates_enabled)
            limit = STREAM_ROWS + 1
        rs = read_sql(cache, source, plan, params, kind=kind, strip=strip, count=prefer.count, limit=limit,
                      offset=offset, max_rows=self.max_rows, aggregates=self.aggregates_enabled)
        return ReadPlan(rs, prefer, kind, strip, offset, stream_rs)

    def _plan_table_read(self, req: RestRequest, cache: SchemaCache, schema: str, source: Source) -> ReadPlan:
        """Table reads are planned once per request *shape*: simple filter values (``col=eq.v``…)
        are swapped for sentinels, the statement is built, and later requests of the same shape
        only substitute their values into the cached parameters."""
        pairs = query_pairs(req.query)
        shape: list[tuple[str, str]] = []
        values: list[str] = []
        sentinel_pairs: list[tuple[str, str]] = []
        for k, v in pairs:
            m = _SIMPLE_FILTER.match(v) if k not in _RESERVED_KEYS and "." not in k else None
            if m is not None:
                shape.append((k, m.group(1)))
                sentinel_pairs.append((k, m.group(1) + f"\x00pgrst{len(values)}\x00"))
                values.append(m.group(2))
            else:
                shape.append((k, v))
                sentinel_pairs.append((k, v))
        key = (cache.version, req.method, schema, req.path, tuple(shape), req.headers.get("accept"),
               tuple(req.prefer_raw), req.headers.get("range"))
        hit = self._read_plans.get(key)
        if hit is None:
            if not values:
                return self._plan_read(req, cache, source, None, None, pairs)
            rp = self._plan_read(req, cache, source, None, None, sentinel_pairs)
            slots = _find_slots(rp.rs, len(values))
            stream_slots = _find_slots(rp.stream_rs, len(values)) if rp.stream_rs is not None else []
            if slots is None or stream_slots is None:
                return self._plan_read(req, cache, source, None, None, pairs)
            if len(self._read_plans) >= 512:
                self._read_plans.clear()
            hit = (rp, slots, stream_slots)
            self._read_plans[key] = hit
        rp, slots, stream_slots = hit
        stream_rs = rp.stream_rs
        if stream_rs is not None:
            stream_rs = _substitute(stream_rs, stream_slots, values)
        return ReadPlan(_substitute(rp.rs, slots, values), rp.prefer, rp.kind, rp.strip, rp.offset, stream_rs)

    async def read(self, req: RestRequest, caller: RestCaller, cache: SchemaCache, schema: str, source: Source,
                   plan: Plan | None = None, params: Params | None = None, *, cacheable: bool = False) -> RestResponse:
        if cacheable:
            rp = self._plan_table_read(req, cache, schema, source)
        else:
            rp = self._plan_read(req, cache, source, plan, params)
        rs, prefer, kind, strip, offset = rp.rs, rp.prefer, rp.kind, rp.strip, rp.offset
        read_only = req.method in ("GET", "HEAD")
        asked = plan_request(req.headers.get("accept", "")) if self.plan_enabled else None
        if asked is not None:
            return await self._explain(req, caller, schema, rs, *asked)

        def check(row: tuple[Any, ...] | None, _: int) -> None:
            if kind == "object" and row is not None and row[1] != 1:
                raise singular_error(int(row[1]))

        row, _ = await self.execute(req, caller, schema, rs.sql, rs.params, read_only=read_only,
                                    check=None if read_only else check, rollback=prefer.tx == "rollback")
        if read_only:
            check(row, 0)
        assert row is not None
        if rp.stream_rs is not None and int(row[1]) > STREAM_ROWS:
            return RestResponse(200, b"", {}, JSON_CT, stream=self._streamer(req, caller, schema, rp.stream_rs, offset))
        total: int | None = None if row[0] is None else int(row[0])
        page = int(row[1])
        body: bytes = row[2]
        if prefer.count in ("planned", "estimated") and (total is None or (
                prefer.count == "estimated" and self.max_rows is not None and total > self.max_rows)):
            total = await self._planned_count(req, caller, schema, f"SELECT 1 FROM {rs.count_from}",
                                              rs.params)
        if kind == "object":
            body = body.strip()[1:-1].strip()
        headers: dict[str, str] = {}
        status = 200
        if total is not None and offset > 0 and offset >= total and page == 0 and total > 0:
            raise RestError(416, "PGRST103", "Requested range not satisfiable",
                           details=f"An offset of {offset} was requested, but there are only {total} rows.",
                           headers={"Content-Range": f"*/{total}"})
        total_s = "*" if total is None else str(total)
        headers["Content-Range"] = f"{offset}-{offset + page - 1}/{total_s}" if page else f"*/{total_s}"
        if total is not None and page < total and kind != "object":
            status = 206
        if prefer.count or prefer.timezone:
            headers["Preference-Applied"] = prefer.applied()
        ct = {"json": JSON_CT, "object": b"application/vnd.pgrst.object+json; charset=utf-8",
              "csv": b"text/csv; charset=utf-8"}[kind]
        if strip and kind != "csv":
            ct = ct.replace(b"; charset", b"; nulls=stripped; charset")
        return apply_response_gucs(RestResponse(status, body, headers, ct), row[3], row[4])

    def _streamer(self, req: RestRequest, caller: RestCaller, schema: str, rs: ReadSQL, offset: int) -> Streamer:
        """Large reads: a server-side cursor, sent in batches, so a response of any size holds only
        one batch in Python. ``count(*) OVER ()`` gives the row count for Content-Range up front."""

        async def run(send: Send, head_only: bool) -> None:
            assert self.pool is not None
            started = False
            async with self.pool.connection() as conn:
                try:
                    await conn.execute(b"BEGIN READ ONLY")
                    await conn.execute(SETUP_SQL, self._setup_params(req, caller, schema))
                    cur = conn.cursor(name="pgrst_stream", binary=True)
                    await cur.execute(rs.sql, rs.params)
                    rows = await cur.fetchmany(STREAM_BATCH)
                    n = int(rows[0][0]) if rows else 0
                    crange = f"{offset}-{offset + n - 1}/*" if n else "*/*"
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-type", JSON_CT), (b"content-range", crange.encode())]})
                    started = True
                    first = True
                    while True:
                        if not head_only:
                            chunk = ",".join(r[1] for r in rows).encode()
                            prefix = b"[" if first else b","
                            if not rows:
                                prefix = b"[" if first else b""
                            first = False
                            await send({"type": "http.response.body", "body": prefix + chunk, "more_body": True})
                        if len(rows) < STREAM_BATCH:
                            break
                        rows = await cur.fetchmany(STREAM_BATCH)
                    await cur.close()
                    await conn.execute(b"COMMIT")
                    await send({"type": "http.response.body", "body": b"" if head_only else b"]"})
                except psycopg.Error as exc:
                    await roll_back(conn)
                    if started:
                        raise
                    await send_error(send, from_pg(exc, anon=caller.anon))
                except BaseException:
                    await roll_back(conn)
                    raise

        return run

    async def _explain(self, req: RestRequest, caller: RestCaller, schema: str, rs: ReadSQL, fmt: str,
                       options: list[str]) -> RestResponse:
        """PostgREST's execution plan of the read (``pgrst.db_plan_enabled``): EXPLAIN with the
        asked options, as the caller (RLS applies), in a transaction that is rolled back."""
        assert self.pool is not None
        flags = ", ".join([f"FORMAT {fmt.upper()}", *(o.upper() for o in options)])
        async with self.pool.connection() as conn:
            try:
                await conn.execute(b"BEGIN READ ONLY")
                await conn.execute(SETUP_SQL, self._setup_params(req, caller, schema))
                cur = await conn.execute(f"EXPLAIN ({flags}) {rs.sql}", rs.params)
                rows = await cur.fetchall()
            except psycopg.Error as exc:
                await roll_back(conn)
                raise from_pg(exc, anon=caller.anon) from None
            await roll_back(conn)
        if fmt == "json":
            value = rows[0][0]
            body = (value if isinstance(value, str) else json.dumps(value)).encode()
        else:
            body = "\n".join(str(r[0]) for r in rows).encode()
        opts = f"; options={'|'.join(options)}" if options else ""
        ct = f'application/vnd.pgrst.plan+{fmt}; for="application/json"{opts}; charset=utf-8'.encode()
        return RestResponse(200, body, {}, ct)

    async def _planned_count(self, req: RestRequest, caller: RestCaller, schema: str, query: str,
                             params: dict[str, Any]) -> int | None:
        row, _ = await self.execute(req, caller, schema, f"EXPLAIN (FORMAT JSON) {query}", params,
                                    read_only=True)
        if row is None:
            return None
        plan = row[0]
        if isinstance(plan, (bytes, str)):
            plan = json.loads(plan)
        try:
            return int(plan[0]["Plan"]["Plan Rows"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
