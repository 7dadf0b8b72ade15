"""Opening a direct Postgres connection with the one error every ``--db-url`` user sees."""

from __future__ import annotations

import psycopg

from appkit.errors import DatabaseError


def connect(conninfo: str, *, autocommit: bool = False, timeout: int = 10) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection to ``conninfo``; any failure to connect is ``DatabaseError``
    ("cannot connect to the database: <reason>"), one line, the URL's password never shown."""
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=timeout, prepare_threshold=None)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot connect to the database: {reason}", code="connection_error") from None
