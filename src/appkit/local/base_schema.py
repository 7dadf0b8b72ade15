"""Apply Supabase's base schema (roles, auth, storage, realtime, extensions) to a database."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import psycopg

from appkit.errors import DatabaseError

#: a "share" directory whose extension/ subfolder holds the shim extensions (extension_control_path)
EXTENSIONS_DIR = Path(__file__).parent / "pgshare"


def schema_files() -> list[tuple[str, str]]:
    pkg = resources.files("appkit.local") / "schema"
    items = sorted((p.name, p.read_text(encoding="utf-8")) for p in pkg.iterdir() if p.name.endswith(".sql"))
    return items


def schema_digest() -> str:
    h = hashlib.sha256()
    for name, text in schema_files():
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def is_hosted_supabase(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """True on a real Supabase database (its own base schema is there and it is not ours)."""
    row = conn.execute(
        "select exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') "
        "and to_regclass('auth.users') is not null "
        "and to_regclass('_appkit.meta') is null"
    ).fetchone()
    return bool(row and row[0])


def _recorded_digest(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    """The digest of the base schema last installed, None on a database without one."""
    if conn.execute("select to_regclass('_appkit.meta')").fetchone() == (None,):
        return None
    row = conn.execute("select value from _appkit.meta where key = 'base_schema'").fetchone()
    return str(row[0]) if row else None


def apply_base_schema(conninfo: str, *, force: bool = False) -> bool:
    """Install or update the emulated base schema in one transaction; True when it ran.

    Skipped when the recorded digest matches (warm starts), and on a real Supabase
    database, which has the genuine schema.
    """
    digest = schema_digest()
    try:
        with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
            if is_hosted_supabase(conn):
                return False
            if not force and _recorded_digest(conn) == digest:
                return False
            name = ""
            try:
                with conn.transaction():
                    conn.execute("select pg_advisory_xact_lock(hashtext('appkit:base_schema'))")
                    for name, text in schema_files():  # noqa: B007 - name reported on failure
                        conn.execute(text.encode())
                    conn.execute(
                        "create schema if not exists _appkit;"
                        "create table if not exists _appkit.meta (key text primary key, value text not null)"
                    )
                    conn.execute(
                        "insert into _appkit.meta values ('base_schema', %s) "
                        "on conflict (key) do update set value = excluded.value",
                        (digest,),
                    )
            except psycopg.Error as exc:
                raise DatabaseError(
                    f"base schema {name} failed: {exc.sqlstate}: {exc.diag.message_primary}", code=exc.sqlstate
                ) from None
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database: {str(exc).strip().splitlines()[0]}") from None
    return True
