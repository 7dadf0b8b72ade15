"""The PostgREST-compatible REST service (mounted at ``/rest/v1``): lifecycle, authentication, dispatch.

One request = one transaction running as the JWT's role over a pool of ``authenticator``
connections. Where the rest lives: ``http.py`` (request/response types), ``plan.py`` (query
string), ``negotiation.py`` (Accept, Prefer, limits), ``executor.py`` (the transaction),
``reads.py``, ``writes.py``, ``rpc.py``; SQL is assembled in ``builder.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp, Receive, Scope, Send

from appkit._jwt import EXPIRED_JWT
from appkit.errors import AuthError
from appkit.local.context import StackContext
from appkit.local.rest import openapi
from appkit.local.rest.builder import table_source
from appkit.local.rest.conns import ConnectionLease
from appkit.local.rest.errors import RestError, table_not_found
from appkit.local.rest.executor import POOL_SIZE, RestCaller
from appkit.local.rest.http import RestRequest, RestResponse, error_response, read_body
from appkit.local.rest.parser import query_pairs
from appkit.local.rest.reads import ReadPlan
from appkit.local.rest.rpc import Rpc
from appkit.local.rest.schema import SchemaWatcher, is_stale
from appkit.local.rest.writes import Writes

log = logging.getLogger("appkit.local.rest")


class RestService(Rpc, Writes):
    """PostgREST's HTTP API as an ASGI app: lifecycle, authentication and dispatch."""

    name = "rest"

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        api = ctx.config.api
        self.schemas = list(api.schemas)
        self.extra_search_path = list(api.extra_search_path)
        self._file_max_rows = api.max_rows
        self.max_rows = api.max_rows
        self.aggregates_enabled = False
        self.plan_enabled = False
        self.anon_role = "anon"
        self.pool: ConnectionLease | None = None
        self.watcher = SchemaWatcher(ctx.conninfo("authenticator"), self.schemas, on_config=self.apply_db_config)
        self._search_paths: dict[str, str] = {}
        self._read_plans: dict[Any, tuple[ReadPlan, list[str], list[str]]] = {}
        self._headers_cache: dict[tuple[tuple[str, str], ...], str] = {}
        self.app: ASGIApp = self

    def apply_db_config(self, settings: dict[str, str]) -> None:
        """PostgREST's in-database configuration (``pgrst.*`` on the authenticator role, read
        at start and on ``NOTIFY pgrst, 'reload config'``): ``db_aggregates_enabled``,
        ``db_plan_enabled`` and ``db_max_rows`` (over ``[api] max_rows``)."""
        self.aggregates_enabled = _truthy(settings.get("pgrst.db_aggregates_enabled"))
        self.plan_enabled = _truthy(settings.get("pgrst.db_plan_enabled"))
        raw = settings.get("pgrst.db_max_rows", "").strip()
        self.max_rows = int(raw) if raw.isdigit() and int(raw) > 0 else self._file_max_rows
        self._read_plans.clear()

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
        req = RestRequest(method, path or "/", scope.get("query_string", b""), headers, prefer)
        resp: RestResponse
        try:
            req.body = await read_body(receive, headers)
            try:
                resp = await self.handle(req)
            except RestError as err:
                # a miss in a stale cache (a NOTIFY lost while the listener reconnected, or
                # still in flight): look again once the cache holds what the database has
                if err.missing is None or not await self._refreshed(err.missing):
                    raise
                resp = await self.handle(req)
        except RestError as err:
            resp = error_response(err)
        except Exception:  # a bug must still answer in PostgREST's shape
            log.exception("rest: unexpected error on %s %s", method, path)
            resp = error_response(RestError(500, "PGRST000", "Internal server error"))
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

    async def _refreshed(self, missing: tuple[str, str, str]) -> bool:
        """Whether the schema cache was reloaded because the database holds the object a
        request missed (one catalog lookup per miss; nothing has run for the request yet)."""
        cache = self.watcher.cache
        if cache is None or self.pool is None:
            return False
        kind, schema, name = missing
        try:
            async with self.pool.connection() as conn:
                if not await is_stale(conn, cache, kind, schema, name):
                    return False
        except (psycopg.Error, RestError):
            return False
        return await self.watcher.refresh(cache) is not None

    def authenticate(self, req: RestRequest) -> RestCaller:
        auth = req.headers.get("authorization", "")
        token: str | None = None
        if auth:
            scheme, _, cred = auth.partition(" ")
            if scheme.lower() != "bearer" or not cred.strip():
                raise RestError(401, "PGRST301", "Invalid Authorization header: expected 'Bearer <JWT>'",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            token = cred.strip()
        else:
            token = req.headers.get("apikey")
            if token is None:
                for k, v in query_pairs(req.query):
                    if k == "apikey":
                        token = v
        if not token:
            raise RestError(401, "PGRST302", "No API key found in request",
                           hint="No `apikey` request header or url param was found.",
                           headers={"WWW-Authenticate": "Bearer"})
        try:
            claims, claims_json = self.ctx.keys.verify_json(token)  # remembered per token by JWTKeys
        except AuthError as exc:
            # PostgREST: claim validation failures are PGRST303, decoding/signature ones PGRST301
            claim = exc.details.get("claim") if isinstance(exc.details, dict) else None
            expired = exc.code == EXPIRED_JWT
            msg = "JWT expired" if expired else (f"The JWT '{claim}' claim must be a number" if claim else str(exc))
            raise RestError(
                401, "PGRST303" if expired or claim else "PGRST301", msg,
                headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{msg}"'},
            ) from None
        role = claims.get("role") or self.anon_role
        if not isinstance(role, str):
            raise RestError(401, "PGRST303", "JWT claim 'role' must be a string")
        return RestCaller(role, claims_json, role == self.anon_role)

    async def handle(self, req: RestRequest) -> RestResponse:
        if req.method == "OPTIONS":
            return RestResponse(200, b"", {"Allow": "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"}, None)
        caller = self.authenticate(req)
        cache = self.watcher.cache
        if cache is None:
            raise RestError(503, "PGRST002", "Could not query the database for the schema cache. Retrying.",
                           details=self.watcher.last_error)
        schema = self._schema(req)
        parts = [p for p in req.path.split("/") if p != ""]
        if not parts:
            if req.method not in ("GET", "HEAD"):
                raise RestError(405, "PGRST117", f"Unsupported HTTP method: {req.method}")
            doc = openapi.document(cache, schema, self.ctx.api_url)
            return RestResponse(200, doc, {}, b"application/openapi+json; charset=utf-8")
        if len(parts) == 2 and parts[0] == "rpc":
            return await self.rpc(req, caller, cache, schema, parts[1])
        if len(parts) != 1:
            raise RestError(404, "PGRST125", "Invalid path specified in request URL")
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
        raise RestError(405, "PGRST117", f"Unsupported HTTP method: {req.method}")

    def _schema(self, req: RestRequest) -> str:
        key = "accept-profile" if req.method in ("GET", "HEAD") else "content-profile"
        profile = req.headers.get(key)
        if profile is None:
            return self.schemas[0]
        if profile not in self.schemas:
            raise RestError(406, "PGRST106", f"Invalid schema: {profile}",
                           hint=f"Only the following schemas are exposed: {', '.join(self.schemas)}")
        return profile


def create_service(ctx: StackContext) -> RestService:
    return RestService(ctx)


def _truthy(value: str | None) -> bool:
    """PostgREST's boolean settings: true/on/yes/1 (any case)."""
    return (value or "").strip().lower() in ("true", "on", "yes", "1")
