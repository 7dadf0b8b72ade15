"""Change data capture: committed row changes from Postgres' logical decoding.

A temporary logical replication slot (``pgoutput``, publications ``supabase_realtime``
and ``appkit_realtime_messages``) is created on a dedicated connection at startup and
polled with ``pg_logical_slot_get_binary_changes``; Postgres drops a temporary slot when
its session ends, so no slot outlives the service (not even after a crash). Decoding
yields only committed transactions, in commit order, each with its commit timestamp.
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

log = logging.getLogger("appkit.local.realtime")

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PUBLICATIONS = ("supabase_realtime", "appkit_realtime_messages")
WAKE_CHANNEL = "appkit_realtime_wake"


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

    def feed(self, data: bytes) -> tuple[Relation | None, list[Change]]:
        """Returns (a new or changed relation, to be described; changes completed by a commit)."""
        r = _Reader(data)
        tag = r.byte()
        if tag == "B":
            r.int64()
            self._commit_ts = PG_EPOCH + timedelta(microseconds=r.int64())
            self._pending = []
        elif tag == "C":
            changes: list[Change] = []
            for kind, relid, new, old in self._pending:
                rel = self.relations.get(relid)
                if rel is not None:
                    changes.append(Change(rel, kind, new, old, self._commit_ts))
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
                # pgoutput repeats a relation's message in every decoding call: an unchanged
                # relation keeps its description (refreshed by age, not per message)
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
    """Owns the replication slot; polls it and hands committed changes to ``handler``."""

    def __init__(self, conninfo: str, handler: ChangeHandler, *, poll_interval: float,
                 idle_interval: float, active: Callable[[], bool]) -> None:
        self.conninfo = conninfo
        self.handler = handler
        self.poll_interval = poll_interval
        self.idle_interval = idle_interval
        self.active = active
        self.slot = f"appkit_realtime_{os.getpid()}_{secrets.token_hex(4)}"
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._listen: psycopg.AsyncConnection[Any] | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._ready = asyncio.Event()
        self.decoder = PgOutputDecoder()
        self._typnames: dict[int, str] = {}
        self._publications: list[str] = []
        self._last_lsn = ""
        self._wait_fn = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self._connect()
        self._tasks.append(asyncio.create_task(self._run(), name="realtime-cdc"))
        self._tasks.append(asyncio.create_task(self._listener(), name="realtime-wake"))

    async def _connect(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, prepare_threshold=None, application_name="appkit-realtime-cdc")
        cur = await conn.execute(
            "select pubname from pg_publication where pubname = any(%s)", (list(PUBLICATIONS),))
        self._publications = [str(r[0]) for r in await cur.fetchall()]
        cur = await conn.execute(
            "select to_regprocedure('realtime.appkit_wait_for_wal(pg_lsn,float8,float8)') is not null")
        row = await cur.fetchone()
        self._wait_fn = bool(row and row[0])
        await conn.execute("select pg_create_logical_replication_slot(%s, 'pgoutput', true)", (self.slot,))
        self.decoder = PgOutputDecoder()
        self._last_lsn = ""
        self._conn = conn
        self._ready.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for conn in (self._conn, self._listen):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()  # closing the session drops the temporary slot
        self._conn = self._listen = None

    async def _listener(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                self._listen = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="appkit-realtime-wake")
                await self._listen.execute(f"listen {WAKE_CHANNEL}")
                backoff = 0.2
                async for _ in self._listen.notifies():
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: retry
                log.debug("realtime wake listener: %s", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

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

    async def _wal_moved(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """A cheap check before decoding: has anything been written to the WAL since?"""
        cur = await conn.execute("select pg_current_wal_flush_lsn()::text")
        row = await cur.fetchone()
        lsn = str(row[0]) if row else ""
        if lsn == self._last_lsn:
            return False
        self._last_lsn = lsn
        return True

    async def _poll_once(self, conn: psycopg.AsyncConnection[Any], *, wait: bool = False) -> int:
        """Decode what committed since the last call; with ``wait``, first block in the
        database until the flushed WAL moves (one round trip for wait and decode)."""
        options: list[str] = ["proto_version", "1", "publication_names", ",".join(self._publications)]
        opts_sql = ", ".join(["%s"] * len(options))
        if wait:
            cur = await conn.execute(
                "select w.lsn::text, c.data from (select realtime.appkit_wait_for_wal(%s::pg_lsn, 0.25, %s) as lsn"
                " offset 0) w left join lateral pg_logical_slot_get_binary_changes(%s, w.lsn, 2000, "
                + opts_sql + ") c on true",
                (self._last_lsn or "0/0", self.poll_interval, self.slot, *options),
            )
            result = await cur.fetchall()
            if result:
                self._last_lsn = str(result[0][0])
            rows = [(r[1],) for r in result if r[1] is not None]
        else:
            if not await self._wal_moved(conn):
                return 0
            cur = await conn.execute(
                "select data from pg_logical_slot_get_binary_changes(%s, null, 2000, " + opts_sql + ")",
                (self.slot, *options),
            )
            rows = [(r[0],) for r in await cur.fetchall()]
        batch: list[Change] = []
        for (data,) in rows:
            rel, changes = self.decoder.feed(bytes(data))
            if rel is not None:
                await self._describe(conn, rel)
            batch.extend(changes)
        if batch:
            now = time.monotonic()
            for change in batch:
                if now - change.relation.checked_at > 2.0:
                    await self._describe(conn, change.relation)
            await self.handler(batch)
        if len(rows) >= 2000 or (rows and not wait):
            self._last_lsn = ""  # more may be pending: decode again at once
        return len(rows)

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            conn = self._conn
            try:
                if conn is None:
                    await self._connect()
                    conn = self._conn
                    assert conn is not None
                    backoff = 0.2
                self._wake.clear()
                if self.active() and self._wait_fn:
                    await self._poll_once(conn, wait=True)
                    continue
                n = await self._poll_once(conn)
                if n:
                    continue
                interval = self.poll_interval if self.active() else self.idle_interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), interval)
            except asyncio.CancelledError:
                raise
            except psycopg.OperationalError as exc:
                log.warning("realtime change feed lost its connection (%s); reconnecting", exc)
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                self._conn = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("realtime change feed error")
                await asyncio.sleep(0.5)
