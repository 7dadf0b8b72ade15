"""What every local-stack service receives: config, keys, database access, data dir.

A service package ``appkit.local.<name>`` exposes ``create_service(ctx) -> Service``;
the gateway mounts ``service.app`` at the service's prefix (``/rest/v1``, ``/auth/v1``,
``/storage/v1``, ``/realtime/v1``) and calls ``startup``/``shutdown`` around serving.
"""

from __future__ import annotations

import contextlib
import select
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from psycopg import AsyncConnection, pq
from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp

from appkit.local.config import ProjectConfig
from appkit.local.health import DatabaseHealth
from appkit.local.keys import JWTKeys


class Service(Protocol):
    name: str
    app: ASGIApp

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


async def check_idle_connection(conn: AsyncConnection[Any]) -> None:
    """The pool's check before lending a connection, without a round trip when it can tell.

    An idle connection in the pool has nothing to read: the server sends on it only when it
    ends the session (``FATAL: terminating connection``, then EOF) or for a notice or
    notification. So an unreadable socket of a connection in the idle state is alive and is
    lent as is; anything else gets the full check (an empty query), which raises -- and the
    pool replaces the connection -- when the server has gone.
    """
    pgconn = conn.pgconn
    if pgconn.status == pq.ConnStatus.OK and pgconn.transaction_status == pq.TransactionStatus.IDLE:
        poller = select.poll()  # not select(): no limit on the descriptor's number
        try:
            poller.register(pgconn.socket, select.POLLIN)
            pending = poller.poll(0)
        except (OSError, ValueError):
            pending = [(0, 0)]
        if not pending:
            return
    await AsyncConnectionPool.check_connection(conn)


#: seconds a pooled connection may sit unused before it is closed: an idle stack holds no
#: pooled connections (a Postgres backend is ~10 MB of RSS); the first request after a
#: quiet spell opens one again (~2-3 ms over the Unix socket)
POOL_MAX_IDLE = 15.0


@dataclass
class StackContext:
    project_dir: Path
    config: ProjectConfig
    keys: JWTKeys
    #: superuser connection URL of the database (embedded or SUPABASE_DB_URL)
    db_url: str
    #: ``supabase/.appkit``: pgdata, storage files, logs, state
    data_dir: Path
    #: the gateway's public base URL, e.g. ``http://127.0.0.1:54321``
    api_url: str
    #: True when the database is the embedded server (role passwords are known)
    embedded: bool = True
    #: the embedded server's Unix-socket directory: the services connect through it (a
    #: round trip over a Unix socket costs both sides less CPU than over loopback TCP)
    socket_dir: Path | None = None
    #: the database's up/down state, kept by the stack's supervisor
    health: DatabaseHealth = field(default_factory=DatabaseHealth)
    _pools: dict[str, AsyncConnectionPool] = field(default_factory=dict)

    def conninfo(self, user: str | None = None) -> str:
        """The database URL, logged in as ``user`` (a Supabase login role) when embedded.

        Against an external database the configured URL is returned unchanged; services
        then switch roles with ``set local role`` as PostgREST does. ``user=None`` is the
        superuser.
        """
        if not self.embedded:
            return self.db_url
        parts = urlsplit(self.db_url)
        userinfo, _, host = parts.netloc.rpartition("@")
        if user is not None:
            userinfo = f"{user}:postgres"
        if self.socket_dir is None:
            return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
        port = parts.port or 5432
        query = urlencode({"host": str(self.socket_dir), "port": port}, quote_via=quote)
        return urlunsplit(parts._replace(netloc=f"{userinfo}@", query=query))

    async def pool(
        self, name: str, *, user: str | None = None, max_size: int = 10, **kwargs: Any,
    ) -> AsyncConnectionPool:
        """A named, shared async pool (opened on first use, closed by the gateway). It opens
        connections on demand and closes them after :data:`POOL_MAX_IDLE` seconds unused."""
        if name not in self._pools:
            async def check(conn: AsyncConnection[Any]) -> None:
                try:
                    await check_idle_connection(conn)
                except Exception:
                    # the server ended this session and likely the other idle ones' too (restart,
                    # db reset, pg_terminate_backend): sweep them all now, or each would cost the
                    # waiting request another failed check and psycopg_pool's retry delay (1, 2,
                    # 4... s: three dead connections cost 7 s, six hit the 30 s pool timeout)
                    with contextlib.suppress(Exception):
                        await pool.check()
                    raise

            pool = AsyncConnectionPool(
                self.conninfo(user), min_size=0, max_size=max_size, max_idle=POOL_MAX_IDLE, open=False,
                kwargs={"autocommit": True, **kwargs}, name=f"appkit-{name}",
                # a connection the server ended (db reset, restart, admin kill) is replaced
                # before a request sees it, instead of failing that request
                check=check,
            )
            await pool.open(wait=True, timeout=30)
            self._pools[name] = pool
        return self._pools[name]

    def open_pools(self) -> dict[str, AsyncConnectionPool]:
        """The pools opened so far, by name (for ``/metrics``)."""
        return dict(self._pools)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
