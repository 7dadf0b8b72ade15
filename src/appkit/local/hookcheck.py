"""Reports, at start, enabled ``[auth.hook.*]`` hooks that cannot work: a ``pg-functions``
hook whose function does not exist, an HTTP(S) hook whose host does not accept connections.

The stack keeps running (a later migration or a server started afterwards may fix it), as
GoTrue does; the warning says which hook, what is missing and what a call to it will do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

import psycopg

from appkit.local.config import HOOK_NAMES, AuthHooksConfig

log = logging.getLogger("appkit.local")

#: seconds to wait for an HTTP hook's host to accept a connection
CONNECT_TIMEOUT = 2.0


async def hook_problems(hooks: AuthHooksConfig, conninfo: str) -> list[str]:
    """One line per enabled hook that cannot be called as configured."""
    out: list[str] = []
    for name in HOOK_NAMES:
        hook = hooks.get(name)
        if not hook.enabled:
            continue
        parsed = urlsplit(hook.uri)
        if parsed.scheme.lower() == "pg-functions":
            _, schema, function = parsed.path.split("/")[:3]
            if not await _function_exists(conninfo, schema, function):
                out.append(f"[auth.hook.{name}] is enabled but function {schema}.{function}(jsonb) does not exist "
                           "(create it in a migration or set enabled = false): calls to the hook fail with 500")
        else:
            reason = await _unreachable(parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80))
            if reason is not None:
                out.append(f"[auth.hook.{name}] is enabled but {parsed.scheme}://{parsed.netloc} does not accept "
                           f"connections ({reason}): calls to the hook fail until it does")
    return out


async def _function_exists(conninfo: str, schema: str, function: str) -> bool:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        cur = await conn.execute(
            "select exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = %s and p.proname = %s)", (schema, function),
        )
        row = await cur.fetchone()
        return bool(row and row[0])


async def _unreachable(host: str, port: int) -> str | None:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def report_hook_problems(hooks: AuthHooksConfig, conninfo: str) -> None:
    """Log :func:`hook_problems` at WARNING (a database error is logged, never raised)."""
    try:
        problems = await hook_problems(hooks, conninfo)
    except psycopg.Error as exc:
        log.warning("could not check the auth hooks: %s", str(exc).strip().splitlines()[:1])
        return
    for line in problems:
        log.warning("%s", line)
