"""Change data capture: committed row changes from Postgres' logical decoding.

A temporary logical replication slot (``pgoutput``, publications ``supabase_realtime``
and ``appkit_realtime_messages``) is created on a replication connection at startup and
streamed with ``START_REPLICATION`` (the streaming replication protocol, spoken through
libpq's COPY BOTH calls: psycopg has no replication API). The WAL sender pushes each
transaction as soon as its commit is flushed -- no polling, nothing to do while nothing
commits. Postgres drops a temporary slot when its session ends, so no slot outlives the
service (not even after a crash). Decoding yields only committed transactions, in
commit order, each with its commit timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from appkit.local.pgsocket import flush, wait_socket
from appkit.local.tasks import cancel_and_wait

log = logging.getLogger("appkit.local.realtime")

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PUBLICATIONS = ("supabase_realtime", "appkit_realtime_messages")
#: seconds between standby status updates (the server's wal_sender_timeout is 60 s)
FEEDBACK_INTERVAL = 10.0


@dataclass
class Column:
    name: str
    type_oid: int
    typname: str = ""


@dataclass
class Relation:
    oid: int
    schema: str
    table: str
    replident: str
    columns: list[Column]
    rls: bool = False
    pk: list[tuple[str, str]] = field(default_factory=list)  # (column, regtype text)
    checked_at: float = 0.0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class Change:
    relation: Relation
    kind: str  # INSERT | UPDATE | DELETE
    new: dict[str, str | None] | None
    old: dict[str, str | None] | None
    commit_ts: datetime
    #: the transaction's id (32 bits, as pgoutput sends it)
    xid: int = 0


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> str:
        b = self.data[self.pos:self.pos + 1].decode()
        self.pos += 1
        return b

    def int8(self) -> int:
        v = int(self.data[self.pos])
        self.pos += 1
        return v

    def int16(self) -> int:
        (v,) = struct.unpack_from("!h", self.data, self.pos)
        self.pos += 2
        return int(v)

    def int32(self) -> int:
        (v,) = struct.unpack_from("!i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def uint32(self) -> int:
        (v,) = struct.unpack_from("!I", self.data, self.pos)
        self.pos += 4
        return int(v)

    def int64(self) -> int:
        (v,) = struct.unpack_from("!q", self.data, self.pos)
        self.pos += 8
        return int(v)

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        s = self.data[self.pos:end].decode()
        self.pos = end + 1
        return s

    def tuple(self, columns: list[Column]) -> dict[str, str | None]:
        n = self.int16()
        out: dict[str, str | None] = {}
        for i in range(n):
            kind = self.byte()
            name = columns[i].name if i < len(columns) else f"col{i}"
            if kind == "n":
                out[name] = None
            elif kind == "u":
                continue  # unchanged TOASTed value: not sent
            elif kind in ("t", "b"):
                length = self.int32()
                out[name] = self.data[self.pos:self.pos + length].decode()
                self.pos += length
        return out


class PgOutputDecoder:
    """Decodes pgoutput (protocol 1) messages; emits changes at each commit."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self._pending: list[tuple[str, int, dict[str, str | None] | None, dict[str, str | None] | None]] = []
        self._commit_ts = PG_EPOCH
        self._xid = 0
        #: between a BEGIN and its COMMIT
        self.in_transaction = False
        #: end LSN of the last commit decoded (what the consumer may confirm)
        self.commit_end_lsn = 0

    def feed(self, data: bytes) -> tuple[Relation | None, list[Change]]:
        """Returns (a new or changed relation, to be described; changes completed by a commit)."""
        r = _Reader(data)
        tag = r.byte()
        if tag == "B":
            r.int64()
            self._commit_ts = PG_EPOCH + timedelta(microseconds=r.int64())
            self._xid = r.uint32()
            self._pending = []
            self.in_transaction = True
        elif tag == "C":
            r.int8()  # flags
            r.int64()  # commit LSN
            self.commit_end_lsn = r.int64()
            self.in_transaction = False
            changes: list[Change] = []
            for kind, relid, new, old in self._pending:
                rel = self.relations.get(relid)
                if rel is not None:
                    changes.append(Change(rel, kind, new, old, self._commit_ts, self._xid))
            self._pending = []
            return None, changes
        elif tag == "R":
            oid = r.uint32()
            schema = r.string()
            table = r.string()
            replident = chr(r.int8())
            ncols = r.int16()
            cols: list[Column] = []
            for _ in range(ncols):
                r.int8()
                name = r.string()
                type_oid = r.uint32()
                r.int32()
                cols.append(Column(name, type_oid))
            known = self.relations.get(oid)
            if (known is not None and (known.schema, known.table, known.replident) == (schema, table, replident)
                    and [(c.name, c.type_oid) for c in known.columns] == [(c.name, c.type_oid) for c in cols]):
                # pgoutput re-sends a relation's message after any cache invalidation of it
                # (a trigger created, a grant): unchanged, it keeps its description
                # (refreshed by age, not per message)
                return None, []
            rel = Relation(oid, schema, table, replident, cols)
            self.relations[oid] = rel
            return rel, []
        elif tag == "I":
            relid = r.uint32()
            rel = self.relations.get(relid)
            r.byte()  # 'N'
            self._pending.append(("INSERT", relid, r.tuple(rel.columns if rel else []), None))
        elif tag == "U":
            relid = r.uint32()
            rel = self.relations.get(relid)
            cols = rel.columns if rel else []
            old_image: dict[str, str | None] | None = None
            kind = r.byte()
            if kind in ("K", "O"):
                old_image = r.tuple(cols)
                kind = r.byte()
            self._pending.append(("UPDATE", relid, r.tuple(cols), old_image))
        elif tag == "D":
            relid = r.uint32()
            rel = self.relations.get(relid)
            r.byte()  # 'K' or 'O'
            self._pending.append(("DELETE", relid, None, r.tuple(rel.columns if rel else [])))
        return None, []


ChangeHandler = Callable[[list[Change]], Awaitable[None]]


class ChangeFeed:
    """Owns the replication slot and its stream; hands committed changes to ``handler``.

    ``lookup`` lends a regular connection for catalog lookups (a replication connection
    in streaming mode takes no queries).
    """

    def __init__(self, conninfo: str, handler: ChangeHandler,
                 lookup: Callable[[], contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]]) -> None:
        self.conninfo = conninfo
        self.handler = handler
        self.lookup = lookup
        self.slot = f"appkit_realtime_{os.getpid()}_{secrets.token_hex(4)}"
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.decoder = PgOutputDecoder()
        self._typnames: dict[int, str] = {}
        self._received = 0  # highest WAL position seen
        self._confirmed = 0  # reported to the server as flushed
        self._feedback_at = 0.0

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="realtime-cdc")

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._task)
        self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # closing the session drops the temporary slot
            self._conn = None

    # -- the replication connection ------------------------------------------------
    async def _connect(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, replication="database", application_name="appkit-realtime-cdc")
        try:
            wanted = ", ".join(f"'{name}'" for name in PUBLICATIONS)  # constants
            rows = await self._simple(conn, f"select pubname from pg_publication where pubname in ({wanted})")
            publications = [row[0] for row in rows]
            await self._simple(conn, f'CREATE_REPLICATION_SLOT "{self.slot}" TEMPORARY LOGICAL pgoutput'
                                     " (SNAPSHOT 'nothing')")
            names = ",".join(f'"{name}"' for name in publications)
            await self._simple(conn, f'START_REPLICATION SLOT "{self.slot}" LOGICAL 0/0'
                                     f" (proto_version '1', publication_names '{names}')")
        except BaseException:
            await conn.close()
            raise
        self.decoder = PgOutputDecoder()
        self._received = self._confirmed = 0
        self._feedback_at = time.monotonic()
        self._conn = conn

    async def _simple(self, conn: psycopg.AsyncConnection[Any], sql: str) -> list[list[str]]:
        """One statement over the simple query protocol (the only one a replication
        connection speaks); its rows as text, until a COPY BOTH result starts streaming."""
        pgconn = conn.pgconn
        pgconn.send_query(sql.encode())
        await flush(pgconn)
        rows: list[list[str]] = []
        while True:
            while pgconn.is_busy():
                await wait_socket(pgconn.socket)
                pgconn.consume_input()
            res = pgconn.get_result()
            if res is None:
                return rows
            if res.status == psycopg.pq.ExecStatus.COPY_BOTH:
                return rows
            if res.status not in (psycopg.pq.ExecStatus.TUPLES_OK, psycopg.pq.ExecStatus.COMMAND_OK):
                raise psycopg.OperationalError((res.error_message or b"").decode(errors="replace").strip())
            rows += [[(res.get_value(i, j) or b"").decode() for j in range(res.nfields)]
                     for i in range(res.ntuples)]

    # -- streaming ---------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                if self._conn is None:
                    await self._connect()
                    backoff = 0.2
                assert self._conn is not None
                await self._stream(self._conn)
            except asyncio.CancelledError:
                raise
            except psycopg.OperationalError as exc:
                if self._stopping:
                    return
                log.warning("realtime change feed lost its connection (%s); reconnecting", exc)
            except Exception:
                log.exception("realtime change feed error")
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _stream(self, conn: psycopg.AsyncConnection[Any]) -> None:
        pgconn = conn.pgconn
        while True:
            nbytes, data = pgconn.get_copy_data(1)
            if nbytes == 0:  # nothing complete buffered: wait for the server
                if time.monotonic() - self._feedback_at >= FEEDBACK_INTERVAL:
                    await self._feedback(conn)
                await wait_socket(pgconn.socket, timeout=FEEDBACK_INTERVAL)
                pgconn.consume_input()
                continue
            if nbytes < 0:  # the server ended the stream
                raise psycopg.OperationalError("replication stream ended")
            msg = bytes(data)
            if msg[:1] == b"w":  # XLogData: start, end, send time, then a pgoutput message
                start, end = struct.unpack_from("!qq", msg, 1)
                self._received = max(self._received, start, end)
                await self._decode(msg[25:])
                if not self.decoder.in_transaction:
                    self._confirmed = max(self._confirmed, self.decoder.commit_end_lsn)
            elif msg[:1] == b"k":  # keepalive: end of WAL, send time, reply requested
                end, _, reply = struct.unpack_from("!qqB", msg, 1)
                self._received = max(self._received, end)
                if not self.decoder.in_transaction:
                    # nothing published is pending: everything up to here is consumed, so
                    # the slot may release that WAL
                    self._confirmed = max(self._confirmed, end)
                if reply:
                    await self._feedback(conn)

    async def _feedback(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Standby status update: written/flushed/applied positions and the clock."""
        now = int((datetime.now(UTC) - PG_EPOCH).total_seconds() * 1_000_000)
        pgconn = conn.pgconn
        pgconn.put_copy_data(struct.pack("!cqqqqB", b"r", self._received, self._confirmed, self._confirmed,
                                         now, 0))
        await flush(pgconn)
        self._feedback_at = time.monotonic()

    async def _decode(self, payload: bytes) -> None:
        rel, changes = self.decoder.feed(payload)
        if rel is not None:
            async with self.lookup() as conn:
                await self._describe(conn, rel)
        if changes:
            now = time.monotonic()
            stale = {id(c.relation): c.relation for c in changes if now - c.relation.checked_at > 2.0}
            if stale:
                async with self.lookup() as conn:
                    for relation in stale.values():
                        await self._describe(conn, relation)
            await self.handler(changes)

    # -- relation descriptions -------------------------------------------------------------
    async def _typname(self, conn: psycopg.AsyncConnection[Any], oids: list[int]) -> None:
        missing = [o for o in oids if o not in self._typnames]
        if missing:
            cur = await conn.execute("select oid::int8, typname::text from pg_type where oid = any(%s)", (missing,))
            for oid, name in await cur.fetchall():
                self._typnames[int(oid)] = str(name)

    async def _describe(self, conn: psycopg.AsyncConnection[Any], rel: Relation) -> None:
        await self._typname(conn, [c.type_oid for c in rel.columns])
        for c in rel.columns:
            c.typname = self._typnames.get(c.type_oid, "text")
        cur = await conn.execute(
            """
            select c.relrowsecurity,
                   coalesce(array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
                            filter (where a.attname is not null), '{}'),
                   coalesce(array_agg(format_type(a.atttypid, null)
                            order by array_position(i.indkey::int2[], a.attnum))
                            filter (where a.attname is not null), '{}')
            from pg_class c
            left join pg_index i on i.indrelid = c.oid and i.indisprimary
            left join pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey::int2[])
            where c.oid = %s
            group by c.relrowsecurity
            """,
            (rel.oid,),
        )
        row = await cur.fetchone()
        if row is not None:
            rel.rls = bool(row[0])
            rel.pk = list(zip(list(row[1]), list(row[2]), strict=False))
        rel.checked_at = time.monotonic()
