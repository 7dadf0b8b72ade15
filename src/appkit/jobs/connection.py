"""The worker's direct Postgres connections: autocommit, keepalives, and settings for throughput or a pooler."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow


async def connect(url: str, *, synchronous_commit: bool = True,
                   pooled: bool = False) -> psycopg.AsyncConnection[TupleRow]:
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=10, application_name="appkit-jobs-worker",
        keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        prepare_threshold=None if pooled else 5,
    )
    if not synchronous_commit and not pooled:
        # State changes of claimed jobs need not wait for the WAL flush: one lost to a database
        # crash only makes its job run again (at least once), never lost. Enqueues are not
        # affected (they commit in the enqueuer's own session).
        await conn.execute("set synchronous_commit = off")
    return conn
