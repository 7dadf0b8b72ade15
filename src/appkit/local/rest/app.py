"""The /rest/v1 ASGI app: PostgREST's HTTP API over the schema cache and a pool of
``authenticator`` connections. One request = one transaction running as the JWT's role."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.types import Receive, Scope, Send

from appkit._jwt import EXPIRED_JWT
from appkit.errors import AuthError
from appkit.local.context import StackContext
from appkit.local.rest import fastpath, openapi
from appkit.local.rest.builder import (
    Params,
    ReadBuilder,
    Source,
    check_paths,
    ident,
    qualified,
    table_source,
    type_sql,
)
from appkit.local.rest.conns import ConnectionLease
from appkit.local.rest.errors import ApiError, column_not_found, from_pg, parse_error, table_not_found
from appkit.local.rest.parser import (
    Field,
    Filter,
    NodeQuery,
    Prefer,
    SelectField,
    SelectItem,
    SelectStar,
    parse_field,
    parse_int,
    parse_list,
    parse_logic,
    parse_operation,
    parse_order,
    parse_prefer,
    parse_range,
    parse_select,
    query_pairs,
    split_path,
)
from appkit.local.rest.schema import Column, Function, SchemaCache, SchemaWatcher, Table

log = logging.getLogger("appkit.local.rest")

JSON_CT = b"application/json; charset=utf-8"
_SETUP_ITEMS = (
    "set_config('search_path', %(sp)s, true), set_config('role', %(role)s, true), "
    "set_config('request.jwt.claims', %(claims)s, true), set_config('request.method', %(method)s, true), "
    "set_config('request.path', %(path)s, true), set_config('request.headers', %(headers)s, true), "
    "set_config('request.cookies', %(cookies)s, true), "
    "set_config('statement_timeout', coalesce(%(timeout)s, current_setting('statement_timeout')), true), "
    "set_config('timezone', coalesce(%(tz)s, current_setting('timezone')), true)"
)
#: the per-request settings PostgREST makes (one small result column: less to decode)
SETUP_SQL = f"select length(concat({_SETUP_ITEMS}))"
SETUP_SQL_RO = f"select length(concat({_SETUP_ITEMS}, set_config('transaction_read_only', %(ro)s, true)))"
POOL_SIZE = 10
#: set by functions/triggers to change the response, read after the statement (aggregates
#: project their target list after consuming every input row)
RESPONSE_GUCS = "current_setting('response.headers', true), current_setting('response.status', true)"
#: reads allowed to return more rows than this are streamed from a server-side cursor
STREAM_ROWS = 5000
STREAM_BATCH = 2000
Streamer = Callable[[Send, bool], Awaitable[None]]
MAX_BODY = 100 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: bytes
    headers: dict[str, str]
    prefer_raw: list[str]
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: bytes | None = JSON_CT
    stream: Streamer | None = None


@dataclass
class Caller:
    role: str
    claims_json: str
    anon: bool


@dataclass
class Plan:
    """Parsed query string for a table or function."""

    select: list[SelectItem]
    queries: dict[tuple[str, ...], NodeQuery]
    columns: list[str] | None = None
    on_conflict: list[str] | None = None
    args: dict[str, str] = field(default_factory=dict)
    has_limit: bool = False


def _error_response(err: ApiError) -> Response:
    return Response(err.status, err.body(), dict(err.headers))


class RestApp:
    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        api = ctx.config.api
        self.schemas = list(api.schemas)
        self.extra_search_path = list(api.extra_search_path)
        self.max_rows = api.max_rows
        self.anon_role = "anon"
        self.pool: ConnectionLease | None = None
        self.watcher = SchemaWatcher(ctx.conninfo("authenticator"), self.schemas)
        self._search_paths: dict[str, str] = {}
        self._read_plans: dict[Any, tuple[_ReadPlan, list[str], list[str]]] = {}
        self._headers_cache: dict[tuple[tuple[str, str], ...], str] = {}
        self._jwt_cache: OrderedDict[str, tuple[dict[str, Any], float, str]] = OrderedDict()

    async def startup(self) -> None:
        pool: AsyncConnectionPool = await self.ctx.pool(
            "rest", user="authenticator", max_size=POOL_SIZE + 2, prepare_threshold=1,
        )
        self.pool = ConnectionLease(pool, POOL_SIZE)
        await self.watcher.start()

    async def shutdown(self) -> None:
        await self.watcher.stop()
        if self.pool is not None:
            await self.pool.close()

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        headers: dict[str, str] = {}
        prefer: list[str] = []
        for k, v in scope["headers"]:
            name = k.decode("latin-1").lower()
            val = v.decode("latin-1")
            if name == "prefer":
                prefer.append(val)
            if name in headers:
                headers[name] += ", " + val
            else:
                headers[name] = val
        method = scope["method"]
        req = Request(method, path or "/", scope.get("query_string", b""), headers, prefer)
        resp: Response
        try:
            req.body = await self._read_body(receive, headers)
            resp = await self.handle(req)
        except ApiError as err:
            resp = _error_response(err)
        except Exception:  # a bug must still answer in PostgREST's shape
            log.exception("rest: unexpected error on %s %s", method, path)
            resp = _error_response(ApiError(500, "PGRST000", "Internal server error"))
        if resp.stream is not None:
            await resp.stream(send, method == "HEAD")
            return
        out_headers: list[tuple[bytes, bytes]] = []
        if resp.content_type is not None and (resp.body or resp.status not in (204, 304)):
            out_headers.append((b"content-type", resp.content_type))
        for k, v in resp.headers.items():
            out_headers.append((k.encode("latin-1"), v.encode("latin-1", "replace")))
        body = b"" if method == "HEAD" else resp.body
        out_headers.append((b"content-length", str(len(body) if method != "HEAD" else len(resp.body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": out_headers})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise ApiError(413, "PGRST413", "Payload Too Large",
                           details=f"The request body is larger than {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            chunk = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > MAX_BODY:
                    raise ApiError(413, "PGRST413", "Payload Too Large",
                                   details=f"The request body is larger than {MAX_BODY} bytes")
                chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return b"".join(chunks)

    # -- auth ---------------------------------------------------------------------------------------
    def authenticate(self, req: Request) -> Caller:
        auth = req.headers.get("authorization", "")
        token: str | None = None
        if auth:
            scheme, _, cred = auth.partition(" ")
            if scheme.lower() != "bearer" or not cred.strip():
                raise ApiError(401, "PGRST301", "Invalid Authorization header: expected 'Bearer <JWT>'",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            token = cred.strip()
        else:
            token = req.headers.get("apikey")
            if token is None:
                for k, v in query_pairs(req.query):
                    if k == "apikey":
                        token = v
        if not token:
            raise ApiError(401, "PGRST302", "No API key found in request",
                           hint="No `apikey` request header or url param was found.",
                           headers={"WWW-Authenticate": "Bearer"})
        now = time.time()
        cached = self._jwt_cache.get(token)
        if cached is not None and cached[1] > now:
            claims, _, claims_json = cached
        else:
            try:
                claims = self.ctx.keys.verify(token)
            except AuthError as exc:
                expired = exc.code == EXPIRED_JWT
                msg = "JWT expired" if expired else str(exc)
                raise ApiError(
                    401, "PGRST303" if expired else "PGRST301", msg,
                    headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{msg}"'},
                ) from None
            claims_json = json.dumps(claims, separators=(",", ":"))
            exp = claims.get("exp")
            if isinstance(exp, (int, float)):
                self._jwt_cache[token] = (claims, float(exp), claims_json)
                if len(self._jwt_cache) > 1024:
                    self._jwt_cache.popitem(last=False)
        role = claims.get("role") or self.anon_role
        if not isinstance(role, str):
            raise ApiError(401, "PGRST303", "JWT claim 'role' must be a string")
        return Caller(role, claims_json, role == self.anon_role)

    # -- dispatch -------------------------------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        if req.method == "OPTIONS":
            return Response(200, b"", {"Allow": "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"}, None)
        caller = self.authenticate(req)
        cache = self.watcher.cache
        if cache is None:
            raise ApiError(503, "PGRST002", "Could not query the database for the schema cache. Retrying.",
                           details=self.watcher.last_error)
        schema = self._schema(req)
        parts = [p for p in req.path.split("/") if p != ""]
        if not parts:
            if req.method not in ("GET", "HEAD"):
                raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {req.method}")
            doc = openapi.document(cache, schema, self.ctx.api_url)
            return Response(200, doc, {}, b"application/openapi+json; charset=utf-8")
        if len(parts) == 2 and parts[0] == "rpc":
            return await self.rpc(req, caller, cache, schema, parts[1])
        if len(parts) != 1:
            raise ApiError(404, "PGRST125", "Invalid path specified in request URL")
        table = cache.tables.get((schema, parts[0]))
        if table is None:
            raise table_not_found(schema, parts[0])
        if req.method in ("GET", "HEAD"):
            return await self.read(req, caller, cache, schema, table_source(table), cacheable=True)
        if req.method == "POST":
            return await self.insert(req, caller, cache, schema, table, upsert_put=False)
        if req.method == "PUT":
            return await self.insert(req, caller, cache, schema, table, upsert_put=True)
        if req.method == "PATCH":
            return await self.update(req, caller, cache, schema, table)
        if req.method == "DELETE":
            return await self.delete(req, caller, cache, schema, table)
        raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {req.method}")

    def _schema(self, req: Request) -> str:
        key = "accept-profile" if req.method in ("GET", "HEAD") else "content-profile"
        profile = req.headers.get(key)
        if profile is None:
            return self.schemas[0]
        if profile not in self.schemas:
            raise ApiError(406, "PGRST106", f"Invalid schema: {profile}",
                           hint=f"Only the following schemas are exposed: {', '.join(self.schemas)}")
        return profile

    # -- query string ---------------------------------------------------------------------------------
    def parse_plan(self, req: Request, arg_names: set[str] | None = None,
                   pairs: list[tuple[str, str]] | None = None) -> Plan:
        select_text: str | None = None
        queries: dict[tuple[str, ...], NodeQuery] = {}
        plan = Plan([SelectStar()], queries)
        for key, value in (query_pairs(req.query) if pairs is None else pairs):
            if key == "apikey":
                continue
            if arg_names is not None and key in arg_names:
                plan.args[key] = value
                continue
            if key == "select":
                select_text = value
                continue
            if key == "columns":
                plan.columns = parse_list("(" + value + ")", "columns")
                continue
            if key == "on_conflict":
                plan.on_conflict = parse_list("(" + value + ")", "on_conflict")
                continue
            path, last = split_path(key)
            negate = False
            if path and path[-1] == "not" and last in ("or", "and"):
                path = path[:-1]
                negate = True
            tpath = tuple(_unquote(p) for p in path)
            node = queries.setdefault(tpath, NodeQuery())
            if last in ("or", "and"):
                node.filters.append(parse_logic(last, value, negate))
            elif last == "order":
                node.order = parse_order(value)
            elif last == "limit":
                node.limit = parse_int(value, "limit")
                plan.has_limit = True
            elif last == "offset":
                node.offset = parse_int(value, "offset")
            else:
                f = parse_field(last)
                node.filters.append(parse_operation(f, value, "filter"))
        if select_text is not None:
            plan.select = parse_select(select_text)
        return plan

    # -- execution --------------------------------------------------------------------------------------
    def _timezone(self, req: Request) -> str | None:
        """``Prefer: timezone=…`` when Postgres knows the zone (ignored otherwise, as PostgREST does)."""
        if not req.prefer_raw:
            return None
        tz = parse_prefer(req.prefer_raw).timezone
        cache = self.watcher.cache
        if tz is None or cache is None or tz not in cache.timezones:
            return None
        return tz

    def _headers_json(self, headers: dict[str, str]) -> str:
        key = tuple(headers.items())
        out = self._headers_cache.get(key)
        if out is None:
            out = json.dumps(headers, separators=(",", ":"))
            if len(self._headers_cache) > 256:
                self._headers_cache.clear()
            self._headers_cache[key] = out
        return out

    def _setup_params(self, req: Request, caller: Caller, schema: str) -> dict[str, Any]:
        search_path = self._search_paths.get(schema)
        if search_path is None:
            search_path = ", ".join(ident(s).replace("%%", "%") for s in [schema, *self.extra_search_path])
            self._search_paths[schema] = search_path
        return {
            "sp": search_path, "role": caller.role, "claims": caller.claims_json, "method": req.method,
            "path": req.path, "headers": self._headers_json(req.headers), "cookies": "{}",
            "timeout": cache_timeout(self.watcher.cache, caller.role), "tz": self._timezone(req),
        }

    async def execute(
        self, req: Request, caller: Caller, schema: str, sql_text: str, params: dict[str, Any], *,
        read_only: bool, rollback: bool = False, check: Any = None, fetch: bool = True,
    ) -> tuple[tuple[Any, ...] | None, int]:
        """Run ``sql_text`` in one transaction as the caller's role, pipelined: BEGIN, the request
        settings, the statement and COMMIT go out together (one round trip) unless a check must
        see the result before deciding between COMMIT and ROLLBACK."""
        # a stale prepared-statement cache (reset by _execute), or a read on a connection the
        # server had closed (database restarted or reset): nothing ran, so run it again, at most
        # once per pooled connection
        for _ in range(POOL_SIZE + 1):
            try:
                return await self._execute(req, caller, schema, sql_text, params, read_only=read_only,
                                           rollback=rollback, check=check, fetch=fetch)
            except _Retry:
                continue
        raise ApiError(503, "PGRST000", "Could not connect with the database")

    async def _execute(
        self, req: Request, caller: Caller, schema: str, sql_text: str, params: dict[str, Any], *,
        read_only: bool, rollback: bool, check: Any, fetch: bool,
    ) -> tuple[tuple[Any, ...] | None, int]:
        assert self.pool is not None
        setup = self._setup_params(req, caller, schema)
        async with self.pool.connection() as conn:
            try:
                if check is None and not rollback:
                    # one implicit transaction: everything up to the pipeline's Sync
                    setup["ro"] = "on" if read_only else "off"
                    try:
                        fast = await fastpath.run(conn, [(SETUP_SQL_RO, setup), (sql_text, params)],
                                                  anon=caller.anon)
                    except fastpath.StalePrepared:
                        raise _Retry() from None
                    except fastpath.BrokenConnection:
                        if read_only:
                            raise _Retry() from None
                        raise ApiError(503, "PGRST000", "Could not connect with the database") from None
                    if fast is not None:
                        return (fast[0] if fetch else None), fast[1]
                    async with conn.pipeline():
                        await conn.execute(SETUP_SQL_RO, setup)
                        cur = conn.cursor(binary=True)
                        await cur.execute(sql_text, params)
                    row = await cur.fetchone() if fetch and cur.description else None
                    return row, cur.rowcount
                async with conn.pipeline() as pipe:
                    await conn.execute(b"BEGIN READ ONLY" if read_only else b"BEGIN")
                    await conn.execute(SETUP_SQL, setup)
                    cur = conn.cursor(binary=True)
                    await cur.execute(sql_text, params)
                    await pipe.sync()
                row = await cur.fetchone() if fetch and cur.description else None
                count = cur.rowcount
                try:
                    if check is not None:
                        check(row, count)
                except BaseException:
                    await _rollback(conn)
                    raise
                await conn.execute(b"ROLLBACK" if rollback else b"COMMIT")
                return row, count
            except psycopg.Error as exc:
                # An explicit ROLLBACK also makes psycopg forget its prepared statements: after an
                # aborted pipeline its cache may name statements the server never created.
                with contextlib.suppress(psycopg.Error):
                    await conn.execute(b"ROLLBACK")
                if exc.sqlstate == "26000":
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute(b"DEALLOCATE ALL")
                    raise _Retry() from None
                if conn.broken and read_only and isinstance(exc, psycopg.OperationalError):
                    raise _Retry() from None
                raise from_pg(exc, anon=caller.anon) from None

    # -- reads ------------------------------------------------------------------------------------------
    def _accept(self, req: Request, *, allow_openapi: bool = False) -> tuple[str, bool]:
        """-> (kind, strip_nulls) where kind is json | object | csv."""
        accept = req.headers.get("accept", "")
        if not accept:
            return "json", False
        for part in accept.split(","):
            mt, _, params = part.strip().partition(";")
            mt = mt.strip().lower()
            strip = "nulls=stripped" in params.replace(" ", "")
            if mt in ("application/json", "*/*", "application/*", "application/vnd.pgrst.array+json"):
                return "json", strip
            if mt == "application/vnd.pgrst.object+json":
                return "object", strip
            if mt == "text/csv":
                return "csv", False
            if mt == "application/openapi+json" and allow_openapi:
                return "json", False
        raise ApiError(406, "PGRST107", f"None of these media types are available: {accept}")

    def _limits(self, req: Request, plan: Plan) -> tuple[int | None, int]:
        root = plan.queries.get((), NodeQuery())
        offset = root.offset or 0
        limit = root.limit
        rng = req.headers.get("range")
        if rng and req.method in ("GET", "HEAD") and root.limit is None and root.offset is None:
            parsed = parse_range(rng)
            if parsed is not None:
                offset = parsed[0]
                limit = None if parsed[1] is None else parsed[1] - parsed[0] + 1
        if self.max_rows is not None:
            limit = self.max_rows if limit is None else min(limit, self.max_rows)
        return limit, offset

    def _plan_read(self, req: Request, cache: SchemaCache, source: Source, plan: Plan | None,
                   params: Params | None, pairs: list[tuple[str, str]] | None = None) -> _ReadPlan:
        plan = plan or self.parse_plan(req, pairs=pairs)
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
                                 offset=offset, max_rows=self.max_rows, stream=True)
            limit = STREAM_ROWS + 1
        rs = read_sql(cache, source, plan, params, kind=kind, strip=strip, count=prefer.count, limit=limit,
                      offset=offset, max_rows=self.max_rows)
        return _ReadPlan(rs, prefer, kind, strip, offset, stream_rs)

    def _plan_table_read(self, req: Request, cache: SchemaCache, schema: str, source: Source) -> _ReadPlan:
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
        return _ReadPlan(_substitute(rp.rs, slots, values), rp.prefer, rp.kind, rp.strip, rp.offset, stream_rs)

    async def read(self, req: Request, caller: Caller, cache: SchemaCache, schema: str, source: Source,
                   plan: Plan | None = None, params: Params | None = None, *, cacheable: bool = False) -> Response:
        if cacheable:
            rp = self._plan_table_read(req, cache, schema, source)
        else:
            rp = self._plan_read(req, cache, source, plan, params)
        rs, prefer, kind, strip, offset = rp.rs, rp.prefer, rp.kind, rp.strip, rp.offset
        read_only = req.method in ("GET", "HEAD")

        def check(row: tuple[Any, ...] | None, _: int) -> None:
            if kind == "object" and row is not None and row[1] != 1:
                raise _singular_error(int(row[1]))

        row, _ = await self.execute(req, caller, schema, rs.sql, rs.params, read_only=read_only,
                                    check=None if read_only else check, rollback=prefer.tx == "rollback")
        if read_only:
            check(row, 0)
        assert row is not None
        if rp.stream_rs is not None and int(row[1]) > STREAM_ROWS:
            return Response(200, b"", {}, JSON_CT, stream=self._streamer(req, caller, schema, rp.stream_rs, offset))
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
            raise ApiError(416, "PGRST103", "Requested range not satisfiable",
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
        return _apply_response_gucs(Response(status, body, headers, ct), row[3], row[4])

    def _streamer(self, req: Request, caller: Caller, schema: str, rs: ReadSQL, offset: int) -> Streamer:
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
                    await _rollback(conn)
                    if started:
                        raise
                    await _send_error(send, from_pg(exc, anon=caller.anon))
                except BaseException:
                    await _rollback(conn)
                    raise

        return run

    async def _planned_count(self, req: Request, caller: Caller, schema: str, query: str,
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

    def _prefer(self, req: Request) -> Prefer:
        prefer = parse_prefer(req.prefer_raw)
        if prefer.handling == "strict" and prefer.invalid:
            raise ApiError(400, "PGRST122", "Invalid preferences given with handling=strict",
                           details=f"Invalid preferences: {', '.join(prefer.invalid)}")
        return prefer

    # -- writes -------------------------------------------------------------------------------------------
    def _json_body(self, req: Request) -> Any:
        ct = req.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ct not in ("application/json", "", "application/vnd.pgrst.object+json", "text/plain"):
            if ct == "text/csv":
                raise ApiError(415, "PGRST107", "text/csv request bodies are not supported by this server")
            raise ApiError(415, "PGRST107", f"Content-Type not acceptable: {ct}")
        if not req.body.strip():
            return None
        try:
            return json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "PGRST102", "Empty or invalid json", details=str(exc)) from None

    async def insert(self, req: Request, caller: Caller, cache: SchemaCache, schema: str, table: Table,
                     *, upsert_put: bool) -> Response:
        plan = self.parse_plan(req)
        prefer = self._prefer(req)
        kind, strip = self._accept(req)
        body = self._json_body(req)
        if isinstance(body, dict):
            rows = [body]
        elif isinstance(body, list) and all(isinstance(r, dict) for r in body):
            rows = body
        else:
            raise ApiError(400, "PGRST102", "Empty or invalid json",
                           details="the body must be a JSON object or an array of objects")
        if upsert_put:
            if len(rows) != 1:
                raise ApiError(400, "PGRST102", "PUT requires a single JSON object")
            self._check_put(plan, table, rows[0])
        if plan.columns is not None:
            cols = plan.columns
        elif rows:
            cols = list(rows[0].keys())
            if len(rows) > 1:
                keyset = set(cols)
                for r in rows[1:]:
                    if set(r.keys()) != keyset:
                        raise ApiError(400, "PGRST102", "All object keys must match")
        else:
            cols = []
        for c in cols:
            if c not in table.columns:
                raise column_not_found(table.name, c)
        tq = qualified(schema, table.name)
        params = Params()
        payload = req.body.strip()
        if isinstance(body, dict):
            payload = b"[" + payload + b"]"
        body_param = params.add(payload.decode("utf-8"))
        col_list = ", ".join(ident(c) for c in cols)
        if prefer.missing == "default":
            exprs = []
            for c in cols:
                col = table.columns[c]
                if col.default is not None:
                    exprs.append(f"CASE WHEN pgrst_e.v ? {params.add(c)} THEN pgrst_r.{ident(c)} "
                                 f"ELSE {type_sql(col.default)} END")
                else:
                    exprs.append(f"pgrst_r.{ident(c)}")
            src = (f"SELECT {', '.join(exprs)} FROM jsonb_array_elements({body_param}::jsonb) AS pgrst_e(v), "
                   f"LATERAL jsonb_populate_record(NULL::{tq}, pgrst_e.v) AS pgrst_r")
        else:
            src = (f"SELECT {', '.join('pgrst_b.' + ident(c) for c in cols)} "
                   f"FROM json_populate_recordset(NULL::{tq}, {body_param}::json) AS pgrst_b")
        if cols:
            dml = f"INSERT INTO {tq} AS t0 ({col_list}) {src}"
        else:
            # every column from its default, once per row
            dml = (f"INSERT INTO {tq} AS t0 SELECT (NULL::{tq}).* FROM json_array_elements({body_param}::json) "
                   "WHERE FALSE")
            if rows:
                dml = f"INSERT INTO {tq} AS t0 DEFAULT VALUES"
                if len(rows) > 1:
                    raise ApiError(400, "PGRST102", "Inserting several empty objects is not supported")
        resolution = prefer.resolution
        if upsert_put:
            resolution = "merge-duplicates"
        if resolution is not None:
            conflict = plan.on_conflict or table.pk
            if not conflict:
                raise ApiError(400, "PGRST100", f"on_conflict is required: '{table.name}' has no primary key")
            for c in conflict:
                if c not in table.columns:
                    raise column_not_found(table.name, c)
            target = ", ".join(ident(c) for c in conflict)
            if resolution == "ignore-duplicates" or not cols:
                dml += f" ON CONFLICT ({target}) DO NOTHING"
            else:
                sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in cols)
                dml += f" ON CONFLICT ({target}) DO UPDATE SET {sets}"
        status = 200 if upsert_put else 201
        return await self._mutate(req, caller, cache, schema, table, dml, params, plan, prefer, kind, strip,
                                  status, location=not upsert_put)

    def _check_put(self, plan: Plan, table: Table, row: dict[str, Any]) -> None:
        root = plan.queries.get((), NodeQuery())
        if root.limit is not None or root.offset is not None:
            raise ApiError(400, "PGRST114", "limit/offset querystring parameters are not allowed for PUT")
        eqs: dict[str, str] = {}
        for flt in root.filters:
            if not isinstance(flt, Filter) or flt.op != "eq" or flt.negate or flt.field.json_path \
                    or not isinstance(flt.value, str):
                raise ApiError(405, "PGRST105", "Filters must include all and only primary key columns with "
                                                "'eq' operators")
            eqs[flt.field.name] = flt.value
        if not table.pk or set(eqs) != set(table.pk):
            raise ApiError(405, "PGRST105", "Filters must include all and only primary key columns with "
                                            "'eq' operators")
        for k in table.pk:
            if k not in row or str(row[k]) != eqs[k]:
                raise ApiError(400, "PGRST115", "Payload values do not match URL in primary key column(s)")

    async def update(self, req: Request, caller: Caller, cache: SchemaCache, schema: str,
                     table: Table) -> Response:
        plan = self.parse_plan(req)
        prefer = self._prefer(req)
        kind, strip = self._accept(req)
        body = self._json_body(req)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError(400, "PGRST102", "Empty or invalid json", details="PATCH needs a JSON object")
        cols = plan.columns if plan.columns is not None else list(body.keys())
        for c in cols:
            if c not in table.columns:
                raise column_not_found(table.name, c)
        tq = qualified(schema, table.name)
        params = Params()
        where = self._mutation_where(cache, table, plan, params)
        if not cols:
            # nothing to change: PostgREST answers as if no row matched
            empty_body = b"[]" if kind == "json" else b""
            if (prefer.return_ == "representation") and kind == "json":
                return Response(200, empty_body, {"Content-Range": "*/*"})
            return Response(204, b"", {"Content-Range": "*/*"}, None)
        body_param = params.add(req.body.decode("utf-8"))
        sets = ", ".join(f"{ident(c)} = pgrst_b.{ident(c)}" for c in cols)
        dml = (f"UPDATE {tq} AS t0 SET {sets} FROM (SELECT * FROM json_populate_record(NULL::{tq}, "
               f"{body_param}::json)) AS pgrst_b{where}")
        return await self._mutate(req, caller, cache, schema, table, dml, params, plan, prefer, kind, strip, 200)

    async def delete(self, req: Request, caller: Caller, cache: SchemaCache, schema: str,
                     table: Table) -> Response:
        plan = self.parse_plan(req)
        prefer = self._prefer(req)
        kind, strip = self._accept(req)
        tq = qualified(schema, table.name)
        params = Params()
        where = self._mutation_where(cache, table, plan, params)
        dml = f"DELETE FROM {tq} AS t0{where}"
        return await self._mutate(req, caller, cache, schema, table, dml, params, plan, prefer, kind, strip, 200)

    def _mutation_where(self, cache: SchemaCache, table: Table, plan: Plan, params: Params) -> str:
        root = plan.queries.get((), NodeQuery())
        for path in plan.queries:
            if path:
                raise ApiError(400, "PGRST108", f"'{'.'.join(path)}' is not an embedded resource in this request")
        rb = ReadBuilder(cache, params, {})
        src = table_source(table)
        conds = [rb.filter_sql(f, src, "t0", {}) for f in root.filters]
        return (" WHERE " + " AND ".join(conds)) if conds else ""

    async def _mutate(self, req: Request, caller: Caller, cache: SchemaCache, schema: str, table: Table,
                      dml: str, params: Params, plan: Plan, prefer: Prefer, kind: str, strip: bool,
                      status: int, *, location: bool = False) -> Response:
        ret = prefer.return_ or "minimal"
        headers: dict[str, str] = {}
        applied = prefer.applied()
        if applied:
            headers["Preference-Applied"] = applied
        max_affected = prefer.max_affected if prefer.handling == "strict" else None

        def check_count(n: int) -> None:
            if max_affected is not None and n > max_affected:
                raise ApiError(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                               details=f"The query affects {n} rows")
            if kind == "object" and n != 1:
                raise _singular_error(n)

        rollback = prefer.tx == "rollback"
        # only these need to see the result before COMMIT; other writes take the one-round-trip path
        needs_check = max_affected is not None or kind == "object"
        if ret == "minimal" and not (location and ret == "headers-only"):
            _, n = await self.execute(
                req, caller, schema, dml, params.values, read_only=False, rollback=rollback, fetch=False,
                check=(lambda _row, n: check_count(n)) if needs_check else None,
            )
            headers["Content-Range"] = f"*/{n}" if prefer.count else "*/*"
            return Response(201 if status == 201 else 204, b"", headers, None)
        select = plan.select
        if ret == "headers-only":
            select = [SelectField(Field(c)) for c in table.pk]
        source = Source(table.name, table.columns, (table.schema, table.name),
                        lambda a: f"pgrst_source AS {ident(a)}")
        rb = ReadBuilder(cache, params, {k: v for k, v in plan.queries.items() if k})
        built = rb.build(source, select, (), "t0")
        selects = ", ".join(f"{e} AS {ident(n)}" for e, n in built.selects)
        body_sql = _body_sql(kind if kind != "object" else "json", strip, [n for _, n in built.selects])
        sql_text = (f"WITH pgrst_source AS ({dml} RETURNING t0.*) "
                    f"SELECT NULL::bigint, pg_catalog.count(*), {body_sql}, {RESPONSE_GUCS} FROM "
                    f"(SELECT {selects} FROM pgrst_source AS t0 {' '.join(built.joins)}) AS pgrst_t")
        row, _ = await self.execute(
            req, caller, schema, sql_text, params.values, read_only=False, rollback=rollback,
            check=(lambda row, _n: check_count(int(row[1]) if row else 0)) if needs_check else None,
        )
        assert row is not None
        n = int(row[1])
        body: bytes = row[2]
        headers["Content-Range"] = f"*/{n}" if prefer.count else "*/*"
        if ret == "headers-only":
            if location and n >= 1 and table.pk:
                first = json.loads(body)[0]
                qs = "&".join(f"{quote(k)}=eq.{quote(str(first.get(k)))}" for k in table.pk)
                headers["Location"] = f"/{quote(table.name)}?{qs}"
            return Response(status if status == 201 else 204, b"", headers, None)
        ct = JSON_CT
        if kind == "object":
            body = body.strip()[1:-1].strip()
            ct = b"application/vnd.pgrst.object+json; charset=utf-8"
        elif kind == "csv":
            ct = b"text/csv; charset=utf-8"
        return _apply_response_gucs(Response(status, body, headers, ct), row[3], row[4])

    # -- rpc ---------------------------------------------------------------------------------------------
    async def rpc(self, req: Request, caller: Caller, cache: SchemaCache, schema: str, name: str) -> Response:
        if req.method not in ("GET", "HEAD", "POST"):
            raise ApiError(405, "PGRST101", "Only GET and POST verbs are allowed for functions")
        overloads = cache.functions.get((schema, name), [])
        if not overloads:
            raise ApiError(
                404, "PGRST202", f"Could not find the function {schema}.{name} in the schema cache",
                hint="Perhaps you meant to call a different function, or the schema cache is stale.",
            )
        prefer = self._prefer(req)
        body: Any = None
        if req.method == "POST":
            body = self._json_body(req)
            if body is None:
                body = {}
        all_arg_names = {a.name for f in overloads for a in f.args if a.name}
        if req.method == "POST":
            plan = self.parse_plan(req)
            given = set(body.keys()) if isinstance(body, dict) else set()
        else:
            plan = self.parse_plan(req, all_arg_names)
            given = set(plan.args)
        fn = self._pick_function(schema, name, overloads, given, body, prefer, req.method)
        if req.method in ("GET", "HEAD") and fn.volatility == "v":
            pass  # runs read-only: a write fails with 25006 -> 405, as in PostgREST
        params = Params()
        fq = qualified(fn.schema, fn.name)
        single_json = fn.single_unnamed_json or (
            prefer.params == "single-object" and len(fn.args) == 1 and fn.args[0].type_name in ("json", "jsonb"))
        if single_json and req.method == "POST":
            call = f"{fq}({params.add(req.body.decode('utf-8') or '{}')}::{type_sql(fn.args[0].type)})"
            args_from = ""
        else:
            if req.method == "POST":
                if not isinstance(body, dict):
                    raise ApiError(400, "PGRST102", "Empty or invalid json",
                                   details="function arguments must be a JSON object")
                payload = req.body.decode("utf-8") if req.body.strip() else "{}"
                names = [a for a in fn.args if a.name in given]
            else:
                payload = json.dumps(plan.args)
                names = [a for a in fn.args if a.name in given]
            if names:
                defs = ", ".join(f"{ident(a.name)} {type_sql(a.type)}" for a in names)
                args_from = f"json_to_record({params.add(payload)}::json) AS pgrst_args({defs})"
                call = f"{fq}(" + ", ".join(
                    f"{'VARIADIC ' if a.variadic else ''}{ident(a.name)} := pgrst_args.{ident(a.name)}"
                    for a in names) + ")"
            else:
                args_from = ""
                call = f"{fq}()"
        kind, _ = self._accept(req)
        read_only = req.method in ("GET", "HEAD")
        rollback = prefer.tx == "rollback"
        prefix = f"{args_from}, LATERAL " if args_from else ""
        if fn.return_kind in ("composite", "record"):
            if fn.return_table is not None and fn.return_table in cache.tables:
                rt = cache.tables[fn.return_table]
                columns = rt.columns
                key: tuple[str, str] | None = fn.return_table
            else:
                columns = {n: Column(n, t, t, "U", True, None, False, i)
                           for i, (n, t) in enumerate(fn.return_columns)}
                key = None
            source = Source(fn.name, columns, key, lambda a: f"{prefix}{call} AS {ident(a)}")
            if fn.returns_set:
                return await self.read(req, caller, cache, schema, source, plan, params)
            resp = await self.read(req, caller, cache, schema, source, plan, params)
            if kind == "json" and resp.status < 300:
                # a single composite: PostgREST answers the object itself
                resp.body = resp.body.strip()
                resp.body = resp.body[1:-1].strip() if resp.body != b"[]" else b"null"
            return resp
        if fn.return_kind == "void":
            inner_call = f"SELECT {call} FROM {args_from}" if args_from else f"SELECT {call}"
            sql_text = f"SELECT {RESPONSE_GUCS} FROM ({inner_call} OFFSET 0) AS pgrst_t"
            vrow, _ = await self.execute(req, caller, schema, sql_text, params.values, read_only=read_only,
                                         rollback=rollback)
            assert vrow is not None
            return _apply_response_gucs(Response(204, b"", {}, None), vrow[0], vrow[1])
        # scalar (or setof scalar)
        if fn.returns_set:
            from_sql = f"{prefix}{call} AS pgrst_f(v)"
            root = plan.queries.get((), NodeQuery())
            limit, offset = self._limits(req, plan)
            inner = f"SELECT pgrst_f.v FROM {from_sql}"
            if limit is not None:
                inner += f" LIMIT {params.add(limit)}"
            if offset:
                inner += f" OFFSET {params.add(offset)}"
            del root
            sql_text = (f"SELECT pg_catalog.count(*), convert_to(coalesce(json_agg(pgrst_t.v), '[]'::json)::text, "
                        f"'UTF8'), {RESPONSE_GUCS} FROM ({inner}) AS pgrst_t")
        else:
            inner_call = f"SELECT {call} AS v FROM {args_from}" if args_from else f"SELECT {call} AS v"
            sql_text = (f"SELECT 1, convert_to(coalesce(to_json(pgrst_t.v), 'null'::json)::text, 'UTF8'), "
                        f"{RESPONSE_GUCS} FROM ({inner_call} OFFSET 0) AS pgrst_t")
        row, _ = await self.execute(req, caller, schema, sql_text, params.values, read_only=read_only,
                                    rollback=rollback)
        assert row is not None
        body_bytes: bytes = row[1]
        n = int(row[0])
        headers = {"Content-Range": f"0-{n - 1}/*" if n else "*/*"}
        if kind == "object" and fn.returns_set:
            if n != 1:
                raise _singular_error(n)
            body_bytes = body_bytes.strip()[1:-1].strip()
        return _apply_response_gucs(Response(200, body_bytes, headers), row[2], row[3])

    def _pick_function(self, schema: str, name: str, overloads: list[Function], given: set[str], body: Any,
                       prefer: Prefer, method: str) -> Function:
        cands: list[Function] = []
        for fn in overloads:
            if method == "POST" and (fn.single_unnamed_json or (
                    prefer.params == "single-object" and len(fn.args) == 1
                    and fn.args[0].type_name in ("json", "jsonb"))):
                cands.append(fn)
                continue
            names = {a.name for a in fn.args}
            required = {a.name for a in fn.args if not a.has_default}
            if "" in names:
                continue
            if given <= names and required <= given:
                cands.append(fn)
        if len(cands) > 1:
            # prefer an exact name match over one that leaves defaults unset
            exact = [f for f in cands if {a.name for a in f.args} == given]
            if len(exact) == 1:
                cands = exact
        if not cands:
            args_text = ", ".join(sorted(given))
            raise ApiError(
                404, "PGRST202",
                f"Could not find the function {schema}.{name}({args_text}) in the schema cache"
                if given else f"Could not find the function {schema}.{name} without parameters in the schema cache",
                hint="Perhaps you meant to call a different function, or the schema cache is stale.",
                details=f"Searched for the function {schema}.{name} with parameters {args_text or '(none)'}, "
                        "but no matches were found in the schema cache.",
            )
        if len(cands) > 1:
            raise ApiError(
                300, "PGRST203",
                "Could not choose the best candidate function between: "
                + ", ".join(f"{schema}.{name}({', '.join(a.name + ' => ' + a.type for a in f.args)})"
                            for f in cands),
                hint="Try renaming the parameters or the function itself in the database so function "
                     "overloading can be resolved",
            )
        return cands[0]


class _Retry(Exception):
    pass


#: filters whose value is bound verbatim as one parameter (cacheable request shapes)
_SIMPLE_FILTER = re.compile(r"^((?:not\.)?(?:eq|neq|gt|gte|lt|lte|isdistinct|match|imatch)\.)(.*)$", re.S)
_RESERVED_KEYS = {"select", "order", "limit", "offset", "columns", "on_conflict", "or", "and", "apikey"}


@dataclass
class _ReadPlan:
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


@dataclass
class ReadSQL:
    sql: str
    count_from: str
    params: dict[str, Any]


def read_sql(cache: SchemaCache, source: Source, plan: Plan, params: Params, *, kind: str, strip: bool,
             count: str | None, limit: int | None, offset: int, max_rows: int | None,
             stream: bool = False) -> ReadSQL:
    """The one statement answering a read: Postgres builds the body (json_agg / csv)."""
    rb = ReadBuilder(cache, params, plan.queries)
    built = rb.build(source, plan.select, (), "t0")
    check_paths(rb)
    selects = ", ".join(f"{e} AS {ident(n)}" for e, n in built.selects)
    where = (" WHERE " + " AND ".join(built.where)) if built.where else ""
    joins = " ".join(built.joins)
    inner = f"SELECT {selects} FROM {source.from_clause('t0')} {joins}{where}"
    if built.order:
        inner += " ORDER BY " + ", ".join(built.order)
    if limit is not None:
        inner += f" LIMIT {params.add(limit)}"
    if offset:
        inner += f" OFFSET {params.add(offset)}"
    count_from = f"{source.from_clause('t0')} {joins if built.where_uses_joins else ''}{where}"
    if stream:
        row = "json_strip_nulls(row_to_json(pgrst_t))" if strip else "row_to_json(pgrst_t)"
        return ReadSQL(f"SELECT pg_catalog.count(*) OVER () AS n, {row}::text FROM ({inner}) AS pgrst_t",
                       count_from, params.values)
    count_sql = "NULL::bigint"
    if count == "exact":
        count_sql = f"(SELECT pg_catalog.count(*) FROM {count_from})"
    elif count == "estimated" and max_rows is not None:
        count_sql = (f"(SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {count_from} "
                     f"LIMIT {params.add(max_rows + 1)}) pgrst_c)")
    body_sql = _body_sql(kind, strip, [n for _, n in built.selects])
    sql_text = (f"SELECT {count_sql} AS total, pg_catalog.count(*) AS page_total, {body_sql} AS body, "
                f"{RESPONSE_GUCS} FROM ({inner}) AS pgrst_t")
    return ReadSQL(sql_text, count_from, params.values)


def _body_sql(kind: str, strip: bool, names: list[str]) -> str:
    if kind == "csv":
        header = ",".join(_csv_quote(n) for n in names).replace("%", "%%")
        lit = "'" + header.replace("'", "''") + "'"
        return (
            f"convert_to({lit} || chr(10) || coalesce(string_agg(substring(pgrst_t::text, 2, "
            "length(pgrst_t::text) - 2), chr(10)), ''), 'UTF8')"
        )
    agg = "coalesce(json_agg(pgrst_t), '[]'::json)"
    if strip:
        agg = f"json_strip_nulls({agg})"
    return f"convert_to({agg}::text, 'UTF8')"


async def _rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await conn.execute(b"ROLLBACK")
    except psycopg.Error:
        pass


async def _send_error(send: Send, err: ApiError) -> None:
    body = err.body()
    headers = [(b"content-type", JSON_CT), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _apply_response_gucs(resp: Response, headers_json: Any, status_text: Any) -> Response:
    """PostgREST's ``response.headers`` (a JSON array of one-key objects) and ``response.status``."""
    if isinstance(headers_json, bytes):
        headers_json = headers_json.decode()
    if isinstance(status_text, bytes):
        status_text = status_text.decode()
    if headers_json:
        try:
            items = json.loads(headers_json)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ValueError
            for item in items:
                for k, v in item.items():
                    if any(c in str(k) + str(v) for c in "\r\n\0"):
                        raise ValueError
                    resp.headers[str(k)] = str(v)
        except ValueError:
            raise ApiError(500, "PGRST111", "response.headers guc must be a JSON array composed of objects "
                                            "with a single key and a string value") from None
    if status_text:
        try:
            code = int(status_text)
            if not 100 <= code <= 599:
                raise ValueError
        except ValueError:
            raise ApiError(500, "PGRST112", "response.status guc must be a valid status code") from None
        resp.status = code
        if code != 204 and resp.content_type is None:
            resp.content_type = JSON_CT
    return resp


def cache_timeout(cache: SchemaCache | None, role: str) -> str | None:
    """The role's own statement_timeout (``alter role ... set``), applied per request as PostgREST does."""
    if cache is None:
        return None
    return cache.role_settings.get(role, {}).get("statement_timeout")


def _singular_error(n: int) -> ApiError:
    return ApiError(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                    details=f"The result contains {n} rows")


def _csv_quote(name: str) -> str:
    if any(c in name for c in ',"\n\r '):
        return '"' + name.replace('"', '""') + '"'
    return name


def _unquote(name: str) -> str:
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name


__all__ = ["RestApp", "parse_error"]
