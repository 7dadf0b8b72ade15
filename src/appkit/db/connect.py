"""Direct Postgres connections for admin code: one connection error for every ``--db-url`` user,
and psycopg errors mapped to ``appkit.errors``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from appkit import errors

_SQLSTATE_CLASS: dict[str, type[errors.AppKitError]] = {
    "42501": errors.PermissionDenied,
    "23505": errors.Conflict,
    "23503": errors.Conflict,
    "40001": errors.Conflict,
    "40P01": errors.Conflict,
    "57014": errors.Timeout,
    "42P01": errors.NotFound,
    "42883": errors.NotFound,
    "3F000": errors.NotFound,
}


def connect(conninfo: str, *, autocommit: bool = False, timeout: int = 10) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection to ``conninfo``; any failure to connect is ``DatabaseError``
    ("cannot connect to the database: <reason>"), one line, the URL's password never shown."""
    if not isinstance(conninfo, str) or not conninfo.strip():
        raise errors.ConfigError("no database URL (pass --db-url or set SUPABASE_DB_URL)", code="invalid_db_url")
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=timeout, prepare_threshold=None)
    except psycopg.ProgrammingError as exc:  # a malformed conninfo string
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise errors.ConfigError(f"invalid database URL: {reason}", code="invalid_db_url") from None
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise errors.DatabaseError(f"cannot connect to the database: {reason}", code="connection_error") from None


def map_db_error(exc: psycopg.Error) -> errors.AppKitError:
    """The appkit error for a psycopg error (SQLSTATE kept in ``code``)."""
    state = exc.sqlstate
    message = (exc.diag.message_primary if state else None) or str(exc).strip().splitlines()[0]
    if isinstance(exc, psycopg.OperationalError) and state is None:
        return errors.ServiceUnavailable(f"could not reach the database: {message}", code="connection_error")
    cls = _SQLSTATE_CLASS.get(state or "")
    if cls is None and state and state.startswith(("22", "23", "P0")):
        cls = errors.ValidationError
    return (cls or errors.DatabaseError)(message, code=state, hint=exc.diag.message_hint if state else None)


@contextmanager
def db_errors() -> Iterator[None]:
    """Raise ``appkit.errors`` instead of psycopg's inside the block."""
    try:
        yield
    except psycopg.Error as exc:
        raise map_db_error(exc) from None


@contextmanager
def admin_session(db_url: str, *, connect_timeout: float = 10) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection returning dict rows; every failure is an ``appkit.errors`` error."""
    conn = connect(db_url, autocommit=True, timeout=max(1, int(connect_timeout)))
    conn.row_factory = dict_row  # type: ignore[assignment]
    with db_errors(), conn:
        yield conn  # type: ignore[misc]
