"""What the studio administers: one project's API URL, keys and database URL, and the per-process
clients built from them (the SDK's service-role client and a small database pool).

Pages reach them with :func:`appkit.studio.studio_of` (``studio_of(request).admin``,
``async with studio_of(request).db() as conn``). The keys and the database URL stay here, on the
admin's machine: nothing in this module is ever rendered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from appkit import errors
from appkit.studio.advisor_cache import AdvisorCache

if TYPE_CHECKING:
    import httpx
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    from appkit import AsyncAppKit


@dataclass(frozen=True)
class StudioTarget:
    """A local stack (``workdir`` set, ``local=True``) or a hosted project (``--url`` and keys)."""

    api_url: str
    service_role_key: str = field(repr=False)
    db_url: str = field(repr=False)
    anon_key: str = field(default="", repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    #: the project folder (``supabase/migrations`` for the Migrations page); None for a hosted project
    workdir: Path | None = None
    #: a local stack: its captured mail is readable, ``/health`` and ``/metrics`` are the stack's
    local: bool = False

    def __post_init__(self) -> None:
        if not self.api_url.startswith(("http://", "https://")):
            raise errors.ConfigError(f"invalid API URL {self.api_url!r}: expected http(s)://...")
        if not self.service_role_key:
            raise errors.ConfigError("the studio needs the project's service-role key")
        if not self.db_url:
            raise errors.ConfigError("the studio needs the project's database URL (--db-url)")

    @property
    def migrations_dir(self) -> Path | None:
        return self.workdir / "supabase" / "migrations" if self.workdir is not None else None


class Studio:
    """The per-process state every page uses: the target, the SDK's service-role client and a DB pool."""

    def __init__(self, target: StudioTarget, *, pool_size: int = 4) -> None:
        self.target = target
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._app: AsyncAppKit | None = None
        self._http: httpx.AsyncClient | None = None
        #: the advisors' findings, shared by the Overview and Advisors pages
        self.advisors = AdvisorCache(target.db_url)

    @property
    def app(self) -> AsyncAppKit:
        """The SDK client (anon scope); ``.admin`` for the service role."""
        if self._app is None:
            from appkit import AsyncAppKit

            self._app = AsyncAppKit(url=self.target.api_url, anon_key=self.target.anon_key or
                                    self.target.service_role_key, service_role_key=self.target.service_role_key,
                                    jwt_secret=self.target.jwt_secret or None)
        return self._app

    @property
    def http(self) -> httpx.AsyncClient:
        """A plain HTTP client for the project's own endpoints (``/health``, ``/metrics``), kept open."""
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=5.0)
        return self._http

    @property
    def admin(self) -> AsyncAppKit:
        """The SDK client with the service role."""
        return self.app.admin

    async def open(self) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        if self._pool is None:
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.target.db_url, min_size=0, max_size=self._pool_size, open=False, timeout=10,
                kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": None,
                        "application_name": "appkit studio"})
            await pool.open(wait=False)
            self._pool = pool
            self.advisors.warm()

    async def close(self) -> None:
        await self.advisors.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._app is not None:
            await self._app.aclose()
            self._app = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @asynccontextmanager
    async def db(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """An autocommit connection returning dict rows; psycopg errors become ``appkit.errors``."""
        import psycopg
        from psycopg_pool import PoolTimeout

        from appkit.db.connect import map_db_error

        if self._pool is None:
            await self.open()
        assert self._pool is not None
        try:
            async with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise errors.ServiceUnavailable("cannot connect to the database (timed out)",
                                            code="connection_error") from None
        except psycopg.Error as exc:
            raise map_db_error(exc) from None


def studio_of(request: Request) -> Studio:
    """The :class:`Studio` (target, SDK client, database pool) serving ``request``."""
    studio: Studio = request.app.state.studio
    return studio
