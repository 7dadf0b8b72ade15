"""Who a call runs as (anon, a signed-in user, the service role) and the clients that carry it.

One ``AsyncCore`` per facade owns the shared HTTP client; every scope derived from it
(``as_user``, ``admin``) reuses it. A user scope refreshes its session before a call when
the access token is within ``refresh_margin`` seconds of expiring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from postgrest import AsyncPostgrestClient
from storage3 import AsyncStorageClient
from supabase_auth import AsyncGoTrueClient
from supabase_auth.types import Session

from appkit import errors
from appkit._async.transport import make_async_http_client
from appkit._errors_map import boundary
from appkit._resilience import RetryPolicy
from appkit.settings import Settings

Role = Literal["anon", "user", "service_role"]


class AsyncCore:
    """Settings plus the one HTTP client (timeouts, retries) every service shares."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        policy = RetryPolicy(settings.max_retries, settings.retry_backoff, settings.retry_max_backoff)
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        self.http = make_async_http_client(policy, timeout, transport)

    def auth_client(self, *, flow_type: Literal["pkce", "implicit"] = "pkce",
                    token: str | None = None) -> AsyncGoTrueClient:
        """A stateless GoTrue client on the shared HTTP client (no timers, no persistence)."""
        key = self.settings.anon_key.get_secret_value()
        headers = {"apikey": key, "Authorization": f"Bearer {token or key}"}
        return AsyncGoTrueClient(
            url=self.settings.auth_url, headers=headers, http_client=self.http,
            auto_refresh_token=False, persist_session=False, flow_type=flow_type,
        )

    async def aclose(self) -> None:
        await self.http.aclose()


class AsyncScope:
    """The credentials of one caller and the REST/storage clients built for them."""

    def __init__(self, core: AsyncCore, role: Role, *, token: str | None = None, session: Session | None = None,
                 on_refresh: Callable[[Session], None] | None = None) -> None:
        self.core = core
        self.role = role
        self.session = session
        self.on_refresh = on_refresh
        settings = core.settings
        if role == "service_role":
            if settings.service_role_key is None:
                raise errors.ConfigError("admin needs the service-role key (SUPABASE_SERVICE_ROLE_KEY)")
            self.apikey = settings.service_role_key.get_secret_value()
        else:
            self.apikey = settings.anon_key.get_secret_value()
        if session is not None:
            token = session.access_token
        self._token = token or self.apikey
        self._lock = asyncio.Lock()
        self._rest: dict[str, tuple[str, AsyncPostgrestClient]] = {}
        self._storage: tuple[str, AsyncStorageClient] | None = None

    def _needs_refresh(self) -> bool:
        s = self.session
        if s is None or not s.refresh_token or s.expires_at is None:
            return False
        return s.expires_at - time.time() <= self.core.settings.refresh_margin

    async def token(self) -> str:
        """The bearer token to send now, refreshing the user's session first if it is about to expire."""
        if self._needs_refresh():
            async with self._lock:
                if self._needs_refresh():
                    await self.refresh()
        return self._token

    async def refresh(self) -> Session:
        if self.session is None or not self.session.refresh_token:
            raise errors.AuthError("this client has no session to refresh", code="session_missing")
        with boundary():
            response = await self.core.auth_client().refresh_session(self.session.refresh_token)
        if response.session is None:
            raise errors.AuthError("the server returned no session on refresh", code="session_missing")
        self.set_session(response.session)
        if self.on_refresh is not None:
            self.on_refresh(response.session)
        return response.session

    def set_session(self, session: Session) -> None:
        self.session = session
        self._token = session.access_token

    def headers(self, token: str) -> dict[str, str]:
        return {"apikey": self.apikey, "Authorization": f"Bearer {token}"}

    async def rest(self, schema: str = "public") -> AsyncPostgrestClient:
        token = await self.token()
        cached = self._rest.get(schema)
        if cached is not None and cached[0] == token:
            return cached[1]
        client = AsyncPostgrestClient(
            self.core.settings.rest_url, schema=schema, headers=self.headers(token),
            http_client=self.core.http, retry_enabled=False,
        )
        self._rest[schema] = (token, client)
        return client

    async def rpc(self, schema: str, function: str, params: dict[str, Any]) -> Any:
        """Call ``schema.function(params)`` through PostgREST as this caller; the answer's JSON,
        errors as ``appkit.errors`` (what every domain service over schema ``appkit`` needs)."""
        client = await self.rest(schema)
        with boundary():
            response = await client.rpc(function, params).execute()
        return response.data

    async def storage(self) -> AsyncStorageClient:
        token = await self.token()
        if self._storage is not None and self._storage[0] == token:
            return self._storage[1]
        client = AsyncStorageClient(self.core.settings.storage_url, self.headers(token), http_client=self.core.http)
        self._storage = (token, client)
        return client
