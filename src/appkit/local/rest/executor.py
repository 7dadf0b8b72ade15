"""The transaction executor: one request = one transaction as the caller's role, with PostgREST's settings."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import psycopg

from appkit.local.context import StackContext
from appkit.local.rest import fastpath
from appkit.local.rest.builder import ident
from appkit.local.rest.conns import ConnectionLease
from appkit.local.rest.errors import RestError, from_pg
from appkit.local.rest.headers import parse_prefer
from appkit.local.rest.http import RestRequest
from appkit.local.rest.schema import SchemaCache, SchemaWatcher


@dataclass
class RestCaller:
    role: str
    claims_json: str
    anon: bool


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


class Retry(Exception):
    pass


async def roll_back(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await conn.execute(b"ROLLBACK")
    except psycopg.Error:
        pass


def cache_timeout(cache: SchemaCache | None, role: str) -> str | None:
    """The role's own statement_timeout (``alter role ... set``), applied per request as PostgREST does."""
    if cache is None:
        return None
    return cache.role_settings.get(role, {}).get("statement_timeout")


class Executor:
    """Runs a statement in a request's transaction (role, claims, search path, timeouts set first)."""

    ctx: StackContext
    pool: ConnectionLease | None
    watcher: SchemaWatcher
    extra_search_path: list[str]
    _search_paths: dict[str, str]
    _headers_cache: dict[tuple[tuple[str, str], ...], str]

    def _timezone(self, req: RestRequest) -> str | None:
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

    def _setup_params(self, req: RestRequest, caller: RestCaller, schema: str) -> dict[str, Any]:
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
        self, req: RestRequest, caller: RestCaller, schema: str, sql_text: str, params: dict[str, Any], *,
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
            except Retry:
                continue
        raise RestError(503, "PGRST000", "Could not connect with the database")

    async def _execute(
        self, req: RestRequest, caller: RestCaller, schema: str, sql_text: str, params: dict[str, Any], *,
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
                        raise Retry() from None
                    except fastpath.BrokenConnection:
                        if read_only:
                            raise Retry() from None
                        raise RestError(503, "PGRST000", "Could not connect with the database") from None
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
                    await roll_back(conn)
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
                    raise Retry() from None
                if conn.broken and read_only and isinstance(exc, psycopg.OperationalError):
                    raise Retry() from None
                raise from_pg(exc, anon=caller.anon) from None
