"""The hot path: one implicit transaction (request settings + one statement) sent straight
through libpq's pipeline mode on a psycopg connection.

psycopg's own pipeline machinery costs ~3x more Python time per request than the protocol
work itself; for the requests that need no decision between COMMIT and ROLLBACK (reads and
plain writes) this module sends Parse (once per connection and statement), Bind/Execute for
both statements and one Sync, and reads the results, with every value bound as an untyped
text parameter (as PostgREST does) and results in binary format (the JSON body arrives as
the bytes Postgres built). Anything it does not handle returns ``None`` and the caller uses
psycopg normally.
"""

from __future__ import annotations

import itertools
import re
import weakref
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq

from appkit.local.pgsocket import flush, wait_socket
from appkit.local.rest.conns import PREPARED_MAX
from appkit.local.rest.errors import RestError, from_fields

_NAMED = re.compile(r"%%|%\((\w+)\)s")
_INT_OIDS = {20, 21, 23}
_names = itertools.count(1)


@dataclass
class _Stmt:
    sql: bytes
    keys: list[str]


_converted: dict[str, _Stmt] = {}
_prepared: weakref.WeakKeyDictionary[Any, dict[bytes, bytes]] = weakref.WeakKeyDictionary()


class BrokenConnection(Exception):
    """The connection failed mid-request; it has been closed."""


class StalePrepared(Exception):
    """The server lost this connection's prepared statements (DEALLOCATE ALL); cache cleared."""


def _convert(query: str) -> _Stmt:
    stmt = _converted.get(query)
    if stmt is None:
        keys: list[str] = []

        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "%%":
                return "%"
            if m.group(1) not in keys:
                keys.append(m.group(1))
            return f"${keys.index(m.group(1)) + 1}"

        sql = _NAMED.sub(repl, query)
        stmt = _Stmt(sql.encode(), keys)
        if len(_converted) > 4096:
            _converted.clear()
        _converted[query] = stmt
    return stmt


def _params(stmt: _Stmt, values: dict[str, Any]) -> list[bytes | None] | None:
    out: list[bytes | None] = []
    for k in stmt.keys:
        v = values[k]
        if v is None:
            out.append(None)
        elif isinstance(v, str):
            if "\x00" in v:
                return None  # let psycopg report it
            out.append(v.encode())
        elif isinstance(v, int) and not isinstance(v, bool):
            out.append(str(v).encode())
        else:
            return None
    return out


def _decode(res: pq.abc.PGresult) -> tuple[Any, ...] | None:
    if res.ntuples < 1:
        return None
    row: list[Any] = []
    for col in range(res.nfields):
        raw = res.get_value(0, col)
        if raw is None:
            row.append(None)
        elif res.ftype(col) in _INT_OIDS:
            row.append(int.from_bytes(raw, "big", signed=True))
        else:
            row.append(bytes(raw))
    return tuple(row)


async def run(
    conn: psycopg.AsyncConnection[Any], statements: list[tuple[str, dict[str, Any]]], *, anon: bool,
) -> tuple[tuple[Any, ...] | None, int] | None:
    """Run ``statements`` as one implicit transaction; the last one's first row and row count.

    ``None`` when this path cannot take the request (the caller then uses psycopg)."""
    pg = conn.pgconn
    if conn._pipeline is not None or pg.transaction_status != pq.TransactionStatus.IDLE \
            or pg.pipeline_status != pq.PipelineStatus.OFF:
        return None
    prepared = _prepared.get(conn)
    if prepared is None:
        prepared = {}
        _prepared[conn] = prepared
    plan: list[tuple[_Stmt, list[bytes | None]]] = []
    for query, values in statements:
        stmt = _convert(query)
        params = _params(stmt, values)
        if params is None:
            return None
        plan.append((stmt, params))
    fd = pg.socket
    done = False
    ops: list[tuple[bytes, bytes] | None] = []  # (sql, name) for a Parse, None for an Execute
    results: list[pq.abc.PGresult] = []
    try:
        pg.nonblocking = 1
        pg.enter_pipeline_mode()
        for stmt, params in plan:
            name = prepared.get(stmt.sql)
            if name is None and len(prepared) < PREPARED_MAX:
                name = f"pgrst_{next(_names)}".encode()
                pg.send_prepare(name, stmt.sql)
                ops.append((stmt.sql, name))
            if name is not None:
                pg.send_query_prepared(name, params, result_format=pq.Format.BINARY)
            else:
                pg.send_query_params(stmt.sql, params, result_format=pq.Format.BINARY)
            ops.append(None)
        pg.pipeline_sync()
        await flush(pg)
        synced = False
        while not synced:
            pg.consume_input()
            while not pg.is_busy():
                res = pg.get_result()
                if res is None:
                    continue
                if res.status == pq.ExecStatus.PIPELINE_SYNC:
                    synced = True
                    break
                results.append(res)
            if not synced:
                await wait_socket(fd)
        pg.exit_pipeline_mode()
        done = True
    except psycopg.OperationalError:
        raise BrokenConnection() from None
    finally:
        if not done:
            await conn.close()
    error: pq.abc.PGresult | None = None
    last: pq.abc.PGresult | None = None
    for op, res in zip(ops, results, strict=False):
        if op is not None and res.status == pq.ExecStatus.COMMAND_OK:
            prepared[op[0]] = op[1]
        if res.status == pq.ExecStatus.FATAL_ERROR and error is None:
            error = res
        if op is None:
            last = res
    if error is not None:
        if error.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
            prepared.clear()
            raise StalePrepared()
        raise _api_error(error, anon)
    if last is None:
        return None, 0
    row = _decode(last) if last.status == pq.ExecStatus.TUPLES_OK else None
    return row, int(last.command_tuples or 0)


def _api_error(res: pq.abc.PGresult, anon: bool) -> RestError:
    def field(f: pq.DiagnosticField) -> str | None:
        v = res.error_field(f)
        return v.decode("utf-8", "replace") if v is not None else None

    return from_fields(
        field(pq.DiagnosticField.SQLSTATE) or "", field(pq.DiagnosticField.MESSAGE_PRIMARY) or "",
        field(pq.DiagnosticField.MESSAGE_DETAIL), field(pq.DiagnosticField.MESSAGE_HINT), anon=anon,
    )
