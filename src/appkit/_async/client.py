"""The facade: ``AsyncAppKit`` hands out services scoped to one caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from pydantic import ValidationError as PydanticValidationError
from supabase_auth.types import Session

from appkit import errors
from appkit._async.audit import AsyncAudit
from appkit._async.auth import AsyncAuth
from appkit._async.files import AsyncFiles
from appkit._async.jobs import AsyncJobs
from appkit._async.notifications import AsyncNotifications
from appkit._async.orgs import AsyncOrgs, AsyncRbac
from appkit._async.profiles import AsyncProfiles
from appkit._async.ratelimit import AsyncRateLimit
from appkit._async.scope import AsyncCore, AsyncScope
from appkit._async.table import AsyncTable
from appkit._async.users import AsyncUsers
from appkit.auth.jwt import JWKSCache
from appkit.model import M
from appkit.realtime import AsyncRealtime
from appkit.settings import Settings


class AsyncAppKit:
    """Entry point of the SDK.

    ``AsyncAppKit(url=..., anon_key=..., service_role_key=...)`` or ``AsyncAppKit.from_env()``.
    The object itself acts as the anonymous caller; ``as_user(session)`` and ``admin`` give
    clients that share its HTTP connections but send another caller's credentials.
    """

    def __init__(
        self,
        url: str | None = None,
        anon_key: str | None = None,
        service_role_key: str | None = None,
        *,
        settings: Settings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        if settings is None:
            values: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
            if url is not None:
                values["url"] = url
            if anon_key is not None:
                values["anon_key"] = anon_key
            if service_role_key is not None:
                values["service_role_key"] = service_role_key
            settings = _settings(values, from_env=False)
        self._core = AsyncCore(settings, transport)
        self._scope = AsyncScope(self._core, "anon")
        self._owner = True
        self._jwks = JWKSCache()
        self._realtime: AsyncRealtime | None = None
        self._admin: AsyncAppKit | None = None

    @classmethod
    def from_env(cls, *, transport: httpx.AsyncBaseTransport | None = None, **overrides: Any) -> AsyncAppKit:
        """Settings from ``SUPABASE_*`` / ``APPKIT_*`` environment variables and ``.env``."""
        return cls(settings=_settings(overrides, from_env=True), transport=transport)

    @classmethod
    def _derived(cls, parent: AsyncAppKit, scope: AsyncScope) -> AsyncAppKit:
        obj = cls.__new__(cls)
        obj._core = parent._core
        obj._scope = scope
        obj._owner = False
        obj._jwks = parent._jwks
        obj._realtime = None
        obj._admin = None
        return obj

    @property
    def settings(self) -> Settings:
        return self._core.settings

    @property
    def role(self) -> str:
        """``anon``, ``user`` or ``service_role``."""
        return self._scope.role

    @property
    def session(self) -> Session | None:
        """The user's current session (refreshed in place) on an ``as_user`` client."""
        return self._scope.session

    def as_user(self, session: Session | str, *, on_refresh: Callable[[Session], None] | None = None) -> AsyncAppKit:
        """A client whose every call carries this user's JWT, so RLS decides what it may do.

        With a ``Session`` the access token is refreshed automatically shortly before it
        expires (``on_refresh`` is told about each new session, e.g. to store it). With a bare
        access token there is nothing to refresh with.
        """
        if isinstance(session, str):
            if not session:
                raise errors.AuthError("empty access token", code="bad_jwt")
            scope = AsyncScope(self._core, "user", token=session)
        elif isinstance(session, Session):
            scope = AsyncScope(self._core, "user", session=session, on_refresh=on_refresh)
        else:
            raise errors.ValidationError("as_user takes a Session or an access token", code="invalid_session")
        return AsyncAppKit._derived(self, scope)

    @property
    def admin(self) -> AsyncAppKit:
        """A client acting as the service role (bypasses RLS). Keep it on the server."""
        if self._admin is None:
            self._admin = AsyncAppKit._derived(self, AsyncScope(self._core, "service_role"))
        return self._admin

    @property
    def auth(self) -> AsyncAuth:
        return AsyncAuth(self._scope, self._jwks)

    @property
    def audit(self) -> AsyncAudit:
        return AsyncAudit(self._scope)

    @property
    def files(self) -> AsyncFiles:
        return AsyncFiles(self._scope)

    @property
    def orgs(self) -> AsyncOrgs:
        """Organizations, members and invitations (schema appkit), as this client's caller."""
        return AsyncOrgs(self._scope)

    @property
    def rbac(self) -> AsyncRbac:
        """Role/permission checks in an organization: ``has(...)``, ``require(...)``."""
        return AsyncRbac(self._scope)

    @property
    def jobs(self) -> AsyncJobs:
        """Background jobs (usually ``app.admin.jobs``; users reach the queues policies open to them)."""
        return AsyncJobs(self._scope)

    @property
    def users(self) -> AsyncUsers:
        """Manage users through the auth admin API: only on ``app.admin`` (the service role)."""
        return AsyncUsers(self._scope)

    @property
    def notifications(self) -> AsyncNotifications:
        return AsyncNotifications(self._scope, lambda: self.realtime)

    @property
    def profiles(self) -> AsyncProfiles:
        return AsyncProfiles(self._scope)

    @property
    def ratelimit(self) -> AsyncRateLimit:
        return AsyncRateLimit(self._scope)

    @property
    def realtime(self) -> AsyncRealtime:
        if self._realtime is None:
            self._realtime = AsyncRealtime(self._scope)
        return self._realtime

    def table(self, model: type[M]) -> AsyncTable[M]:
        return AsyncTable(self._scope, model)

    async def rpc(self, function: str, params: dict[str, Any] | None = None, *, schema: str = "public") -> Any:
        """Call a Postgres function through PostgREST; returns its decoded JSON result."""
        from appkit._errors_map import boundary

        client = await self._scope.rest(schema)
        with boundary():
            response = await client.rpc(function, params or {}).execute()
        return response.data

    async def aclose(self) -> None:
        """Close the shared HTTP connections (only the root client owns them)."""
        if self._realtime is not None:
            await self._realtime.aclose()
        if self._admin is not None and self._admin._realtime is not None:
            await self._admin._realtime.aclose()
        if self._owner:
            await self._core.aclose()

    async def __aenter__(self) -> AsyncAppKit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _settings(values: dict[str, Any], *, from_env: bool) -> Settings:
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise errors.ConfigError(f"unknown appkit settings: {', '.join(unknown)}", code="invalid_settings")
    try:
        if from_env:
            return Settings(**values)
        return Settings.model_validate(values)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise errors.ConfigError(f"invalid appkit settings: {problems}", code="invalid_settings") from None
