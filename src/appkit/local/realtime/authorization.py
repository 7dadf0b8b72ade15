"""Who may do what: verifying a socket's or request's token, and the RLS checks on
``realtime.messages`` that decide private channels' reads and writes."""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appkit._jwt import EXPIRED_JWT
from appkit.errors import AuthError
from appkit.local.context import StackContext
from appkit.local.realtime.protocol import dumps

log = logging.getLogger("appkit.local.realtime")


class TokenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Authorization:
    """Token verification and the read/write policy checks."""

    ctx: StackContext
    _pool: AsyncConnectionPool | None
    _roles: set[str] | None

    @property
    def pool(self) -> AsyncConnectionPool:
        assert self._pool is not None, "realtime service not started"
        return self._pool

    def verify(self, token: str | None) -> dict[str, Any]:
        """Claims of a valid token, or TokenError with Supabase Realtime's reason text."""
        if not token:
            raise TokenError("InvalidJWTToken: Fields `role` and `exp` are required in JWT")
        token = "".join(token.split())
        try:
            claims = self.ctx.keys.verify(token)
        except AuthError as exc:
            if exc.code == EXPIRED_JWT:
                try:
                    exp = int(jwt.decode(token, options={"verify_signature": False}).get("exp", 0))
                except (jwt.PyJWTError, TypeError, ValueError):
                    exp = int(time.time())
                ago = max(0, int(time.time()) - exp)
                raise TokenError(f"InvalidJWTToken: Token has expired {ago} seconds ago") from None
            try:
                jwt.get_unverified_header(token)
                jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                raise TokenError("MalformedJWT: The token provided is not a valid JWT") from None
            raise TokenError("JwtSignatureError: Failed to validate JWT signature") from None
        if "role" not in claims or "exp" not in claims:
            raise TokenError("InvalidJWTToken: Fields `role` and `exp` are required in JWT")
        if self._roles is not None and str(claims["role"]) not in self._roles:
            raise TokenError(f"Unauthorized: role {str(claims['role'])!r} is not allowed")
        return claims

    async def read_policies(self, topic: str, claims: dict[str, Any]) -> tuple[bool, bool]:
        """(broadcast read, presence read) for ``topic`` under RLS on realtime.messages."""
        try:
            async with self.pool.connection() as conn, conn.transaction(force_rollback=True):
                cur = await conn.execute(
                    "insert into realtime.messages (topic, extension) values (%s, 'broadcast'), (%s, 'presence') "
                    "returning id, extension", (topic, topic))
                ids = {str(ext): i for i, ext in await cur.fetchall()}
                await self._set_claims(conn, topic, claims)
                cur = await conn.execute(
                    "select extension from realtime.messages where topic = %s and id = any(%s)",
                    (topic, list(ids.values())))
                seen = {str(r[0]) for r in await cur.fetchall()}
        except psycopg.Error as exc:
            log.info("realtime: read authorization for %r failed: %s", topic, exc)
            return False, False
        return "broadcast" in seen, "presence" in seen

    async def write_policy(self, topic: str, claims: dict[str, Any], extension: str) -> bool:
        try:
            async with self.pool.connection() as conn, conn.transaction(force_rollback=True):
                await self._set_claims(conn, topic, claims)
                try:
                    async with conn.transaction():
                        await conn.execute(
                            "insert into realtime.messages (topic, extension) values (%s, %s)", (topic, extension))
                except psycopg.errors.InsufficientPrivilege:
                    return False
        except psycopg.Error as exc:
            log.info("realtime: write authorization for %r failed: %s", topic, exc)
            return False
        return True

    @staticmethod
    async def _set_claims(conn: psycopg.AsyncConnection[Any], topic: str, claims: dict[str, Any]) -> None:
        await conn.execute(
            "select set_config('role', %s, true), set_config('realtime.topic', %s, true), "
            "set_config('request.jwt.claims', %s, true), set_config('request.headers', '{}', true), "
            "set_config('request.jwt.claim.sub', %s, true), set_config('request.jwt.claim.role', %s, true)",
            (str(claims.get("role", "anon")), topic, dumps(claims), str(claims.get("sub", "")),
             str(claims.get("role", ""))),
        )

    async def _http_claims(self, request: Request) -> dict[str, Any] | Response:
        apikey = request.headers.get("apikey") or request.query_params.get("apikey")
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else apikey
        if not apikey and not token:
            return JSONResponse({"message": "Unauthorized: missing apikey"}, status_code=401)
        try:
            if apikey and apikey != token:
                self.verify(apikey)
            return self.verify(token)
        except TokenError as exc:
            return JSONResponse({"message": exc.reason}, status_code=401)
