"""Supabase Vault on the local stack: its root key file, and ``[db.vault]`` secrets created at start.

The ``supabase_vault`` emulation (``pgshare/extension/supabase_vault--*.sql``) encrypts with a
32-byte root key that SQL reads from :data:`KEY_FILE` in the server's data directory, so the key
is never in the database (nor in a dump of it). :func:`ensure_key` writes it once, from the
operating system's random source, readable by the server's user only; nothing logs it.
:func:`upsert_config_secrets` does what the Supabase CLI does with ``[db.vault]`` when it sets up
the database: a secret whose name exists is updated, any other is created.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg

from appkit.errors import StackError

#: the root key's file name inside the server's data directory
KEY_FILE = "appkit_vault.key"
KEY_BYTES = 32
_ENV_REF = re.compile(r"^env\((.*)\)$")


def ensure_key(datadir: Path) -> bool:
    """Create the root key in ``datadir`` unless it exists; True when it was created.

    The file belongs to the data directory's owner (the server's user) with mode 0600."""
    path = datadir / KEY_FILE
    if path.exists():
        return False
    owner = datadir.stat()
    tmp = datadir / f".{KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, os.urandom(KEY_BYTES))
            os.fsync(fd)
            if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
                os.fchown(fd, owner.st_uid, owner.st_gid)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def config_secrets(secrets: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The ``[db.vault]`` entries to store, and the names skipped: as the Supabase CLI, an empty
    value or an ``env(NAME)`` whose variable is unset is not stored."""
    keep = {name: value for name, value in secrets.items() if value and not _ENV_REF.match(value)}
    return keep, sorted(set(secrets) - set(keep))


def upsert_config_secrets(conninfo: str, secrets: dict[str, str]) -> list[str]:
    """Store ``secrets`` (name -> value) in ``vault.secrets``: update those whose name exists,
    create the others, in one transaction. Returns the names stored."""
    if not secrets:
        return []
    names = sorted(secrets)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
            rows = conn.execute("select id, name from vault.secrets where name = any(%s)", (names,)).fetchall()
            existing = {str(name): sid for sid, name in rows}
            for name in names:
                if name in existing:
                    conn.execute("select vault.update_secret(%s, %s)", (existing[name], secrets[name]))
                else:
                    conn.execute("select vault.create_secret(%s, %s)", (secrets[name], name))
    except psycopg.Error as exc:
        first = (exc.diag.message_primary or str(exc)).strip().splitlines()
        raise StackError(f"[db.vault]: cannot store the secrets: {first[0] if first else type(exc).__name__}") from None
    return names
