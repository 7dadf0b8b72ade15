"""Database access for Storage: every request runs as the caller, like Supabase Storage.

``as_caller`` opens a transaction on the ``authenticator`` pool and switches to the
caller's role (``set_config('role', ..., true)``: ``set local role``) and ``request.jwt.claims`` (+ the legacy
``request.jwt.claim.*`` settings), so RLS policies on ``storage.objects`` and
``storage.buckets`` decide (``service_role`` has BYPASSRLS). ``as_admin`` runs on a
``supabase_storage_admin`` pool (the owner of the storage tables, so RLS does not apply)
for the checks Supabase Storage also does as its superuser: bucket limits, public
objects, objects reached through a verified signed token, startup housekeeping.
Against an external database both pools log in with the configured URL and the caller
transaction still switches role.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from appkit.local.storage import errors as E

log = logging.getLogger("appkit.local.storage")

Conn = AsyncConnection[dict[str, Any]]


@dataclass(frozen=True)
class StorageCaller:
    """Who is calling: the role and claims from the verified JWT."""

    role: str
    claims: dict[str, Any] = field(default_factory=dict)
    #: False when no valid JWT came with the request (routes that fall back to anon)
    verified: bool = True

    @property
    def sub(self) -> str | None:
        sub = self.claims.get("sub")
        return str(sub) if sub else None

    @property
    def owner_uuid(self) -> str | None:
        """``owner`` is a uuid column: set only when ``sub`` is one (as Supabase does)."""
        sub = self.sub
        if sub is None:
            return None
        import uuid

        try:
            return str(uuid.UUID(sub))
        except ValueError:
            return None


def map_db_error(exc: psycopg.Error) -> E.StorageError:
    """Translate a database error into Storage's error for it."""
    state = exc.sqlstate or ""
    message = str(exc.diag.message_primary or exc)
    if state == "42501":
        if "row-level security" in message:
            return E.access_denied("new row violates row-level security policy")
        return E.access_denied(message)
    if state == "23505":
        return E.key_exists()
    if state == "23503":
        return E.no_such_bucket()
    if state == "57014":
        return E.database_timeout()
    if state in ("22P02", "22023", "22001", "22003", "23502", "23514", "22007", "22008"):
        return E.invalid_request(message)
    if state == "0LP01" or state.startswith("28") or state == "22023":
        return E.access_denied(message)
    log.error("storage database error %s: %s", state, message)
    return E.internal_error()


class StorageDB:
    def __init__(self, user_pool: AsyncConnectionPool, admin_pool: AsyncConnectionPool) -> None:
        self.user_pool = user_pool
        self.admin_pool = admin_pool

    @asynccontextmanager
    async def as_caller(self, caller: StorageCaller, method: str = "GET") -> AsyncIterator[Conn]:
        try:
            async with self.user_pool.connection() as raw:
                conn = cast(Conn, raw)
                conn.row_factory = dict_row
                async with conn.transaction():
                    # one round trip: set_config('role', ..., true) is SET LOCAL ROLE (as PostgREST does)
                    await conn.execute(
                        "select set_config('role', %s, true),"
                        " set_config('request.jwt.claims', %s, true),"
                        " set_config('request.jwt.claim.sub', %s, true),"
                        " set_config('request.jwt.claim.role', %s, true),"
                        " set_config('request.method', %s, true)",
                        (caller.role, json.dumps(caller.claims), caller.sub or "", caller.role, method),
                    )
                    yield conn
        except psycopg.Error as exc:
            raise map_db_error(exc) from None

    @asynccontextmanager
    async def as_admin(self) -> AsyncIterator[Conn]:
        try:
            async with self.admin_pool.connection() as raw:
                conn = cast(Conn, raw)
                conn.row_factory = dict_row
                async with conn.transaction():
                    yield conn
        except psycopg.Error as exc:
            raise map_db_error(exc) from None

    async def admin_one(self, query: str, params: Any = None) -> dict[str, Any] | None:
        async with self.as_admin() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    async def admin_all(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        async with self.as_admin() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()
