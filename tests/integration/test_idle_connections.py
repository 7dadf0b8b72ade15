"""An idle stack gives its database connections back: the REST lease returns connections
it has not lent for ``max_idle`` seconds to the pool (which then closes them)."""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from appkit.local.rest.conns import ConnectionLease


def test_lease_returns_idle_connections_to_the_pool(stack) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        pool = AsyncConnectionPool(stack.db_url, min_size=0, max_size=4, open=False, kwargs={"autocommit": True})
        await pool.open(wait=True)
        lease = ConnectionLease(pool, 4, max_idle=0.3)
        try:
            async with lease.connection() as a, lease.connection() as b:
                await a.execute("select 1")
                await b.execute("select 1")
            assert pool.get_stats()["pool_available"] == 0  # both held by the lease, idle there
            async with lease.connection() as again:  # an idle one is lent without the pool
                await again.execute("select 1")
            await asyncio.sleep(1.0)
            stats = pool.get_stats()
            assert stats["pool_available"] == 2, stats
            async with lease.connection() as c:  # and the lease borrows anew afterwards
                assert (await (await c.execute("select 41 + 1")).fetchone()) == (42,)
        finally:
            await lease.close()
            await pool.close()

    asyncio.run(run())


def test_idle_check_lends_live_connections_and_rejects_ended_ones(stack) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    from appkit.local.context import check_idle_connection

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(stack.db_url, autocommit=True) as conn:
            await check_idle_connection(conn)  # alive: no error (and no round trip needed)
            pid = conn.info.backend_pid
            async with await psycopg.AsyncConnection.connect(stack.db_url, autocommit=True) as admin:
                await admin.execute("select pg_terminate_backend(%s, 5000)", (pid,))
            try:
                await check_idle_connection(conn)
            except psycopg.OperationalError:
                pass
            else:
                raise AssertionError("a connection the server ended passed the check")

    asyncio.run(run())
