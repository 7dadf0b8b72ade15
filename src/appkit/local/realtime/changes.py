"""Postgres Changes: checking a join's bindings, and delivering each decoded change to the
subscribers whose bindings match and whose RLS lets them see the row."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg

from appkit.local.realtime.broadcast import Broadcast
from appkit.local.realtime.cdc import Change, Relation
from appkit.local.realtime.channels import PG_EVENTS, Binding, Channel
from appkit.local.realtime.protocol import dumps
from appkit.local.realtime.values import FilterError, parse_filters, to_json_value

log = logging.getLogger("appkit.local.realtime")


T = TypeVar("T")
MAX_RECORD_BYTES = 1024 * 1024


async def _scalar(conn: psycopg.AsyncConnection[Any], query: str,
                  params: tuple[Any, ...]) -> tuple[Any, psycopg.Error | None]:
    """(first column of the first row, None), or (None, the error) when the statement fails;
    a lost connection raises instead (the caller retries it on another)."""
    try:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        return None, exc
    return (row[0] if row else None), None


class PostgresChanges(Broadcast):
    """Matching changes to bindings and delivering them."""

    _privileges: dict[tuple[str, int], tuple[bool, float]]

    def _binding(self, bid: int, params: dict[str, Any]) -> Binding:
        event = str(params.get("event", "*")).upper()
        if event not in PG_EVENTS:
            raise FilterError(f"invalid event {params.get('event')!r}")
        schema = params.get("schema") or "public"
        table = params.get("table")
        select = params.get("select")
        filt = params.get("filter")
        if filt is not None and not isinstance(filt, str):
            raise FilterError("filter must be a string")
        return Binding(
            id=bid, event=event, schema=str(schema), table=str(table) if table else None,
            filters=parse_filters(filt), params=params,
            select=[str(c) for c in select] if isinstance(select, list) else None,
        )

    async def _check_binding_columns(self, bindings: list[Binding]) -> str | None:
        """Filter columns must exist on the subscribed table (Supabase rejects them too)."""
        try:
            async with self.pool.connection() as conn:
                for b in bindings:
                    if not b.filters or b.table in (None, "*"):
                        continue
                    cur = await conn.execute(
                        "select a.attname::text from pg_attribute a join pg_class c on c.oid = a.attrelid "
                        "join pg_namespace n on n.oid = c.relnamespace "
                        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped",
                        (b.schema, b.table))
                    columns = {str(r[0]) for r in await cur.fetchall()}
                    if not columns:
                        continue  # table not there (yet): Supabase accepts and waits for it
                    for f in b.filters:
                        if f.column not in columns:
                            return f"invalid column for filter {f.column}"
        except psycopg.Error as exc:
            return str(exc)
        return None

    async def _replay(self, ch: Channel, params: Any) -> list[dict[str, Any]] | str:
        """Broadcast replay (private channels): the last ``limit`` (at most 25) messages
        stored in realtime.messages for the topic since ``since`` (ms since the epoch),
        oldest first, marked ``meta.replayed``. A string is the join error."""
        if not ch.private:
            return "UnableToReplayMessages: Replay is not allowed for public channels"
        since, limit = (params.get("since", 0), params.get("limit", 10)) if isinstance(params, dict) else (None, None)
        if not isinstance(since, int) or not isinstance(limit, int) or isinstance(since, bool) or since < 0:
            return "UnableToReplayMessages: Replay params are not valid"
        if not ch.can_read_broadcast:
            return f"Unauthorized: You do not have permissions to read from this Channel topic: {ch.sub_topic}"
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "select id::text, event, payload from realtime.messages where topic = %s and private "
                    "and extension = 'broadcast' and inserted_at >= (to_timestamp(%s / 1000.0) at time zone 'UTC') "
                    "order by inserted_at desc limit %s",
                    (ch.sub_topic, since, max(1, min(limit, 25))))
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            log.info("realtime: replay for %r failed: %s", ch.sub_topic, exc)
            return "UnableToReplayMessages: Realtime was unable to replay messages"
        return [{"type": "broadcast", "event": event, "payload": payload if payload is not None else {},
                 "meta": {"replayed": True, "id": mid}} for mid, event, payload in reversed(rows)]

    async def on_changes(self, batch: list[Change]) -> None:
        for change in batch:
            rel = change.relation
            if rel.schema == "realtime" and rel.table == "messages" and change.kind == "INSERT":
                self._db_broadcast(change)
            if self.pg_channels:
                try:
                    await self._dispatch(change)
                except Exception:
                    log.exception("realtime: could not dispatch a change on %s", rel.qualified)

    async def _on_connection(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``work`` on a pooled connection; once more on another when the connection breaks
        (a change must not be dropped for a subscriber because a socket died)."""
        try:
            async with self.pool.connection() as conn:
                return await work(conn)
        except psycopg.OperationalError as exc:
            log.info("realtime: database connection lost during a change (%s); retrying", exc)
        async with self.pool.connection() as conn:
            return await work(conn)

    async def _select_privileges(self, rel: Relation, roles: set[str]) -> dict[str, bool]:
        now = time.monotonic()
        out: dict[str, bool] = {}
        missing: list[str] = []
        for role in roles:
            cached = self._privileges.get((role, rel.oid))
            if cached is not None and now - cached[1] < 5.0:
                out[role] = cached[0]
            else:
                missing.append(role)
        if missing:

            async def lookup(conn: psycopg.AsyncConnection[Any]) -> dict[str, bool]:
                found: dict[str, bool] = {}
                for role in missing:  # an error (a role that no longer exists) denies
                    value, error = await _scalar(conn, "select has_table_privilege(%s, %s::oid, 'SELECT')",
                                                 (role, rel.oid))
                    found[role] = error is None and bool(value)
                return found

            for role, ok in (await self._on_connection(lookup)).items():
                out[role] = ok
                self._privileges[(role, rel.oid)] = (ok, now)
        return out

    async def _deliver_visible(self, rel: Relation, change: Change, channels: list[Channel],
                               deliver: Callable[[list[Channel]], None]) -> None:
        """Hand ``deliver`` the channels allowed to see ``change``. With RLS, the distinct
        claim sets are checked in up to three chunks on separate connections, in parallel,
        each chunk delivered as soon as it is known (the caller awaits all of them before
        the next change, so per-channel order holds)."""
        roles = {str(ch.claims.get("role", "anon")) for ch in channels}
        privileges = await self._select_privileges(rel, roles)
        allowed = [ch for ch in channels if privileges.get(str(ch.claims.get("role", "anon")), False)]
        if not allowed or change.kind == "DELETE" or not rel.rls:
            deliver(allowed)
            return
        row = change.new or {}
        if not rel.pk or any(row.get(col) is None for col, _ in rel.pk):
            return
        groups: dict[str, list[Channel]] = {}
        for ch in allowed:
            groups.setdefault(ch.claims_key, []).append(ch)
        keys = list(groups)
        args = (rel.oid, [c for c, _ in rel.pk], [t for _, t in rel.pk], [row.get(c) for c, _ in rel.pk])
        query = "select realtime.appkit_visible_to(%s::oid::regclass, %s, %s::regtype[], %s, %s::jsonb, %s)"

        async def visible(conn: psycopg.AsyncConnection[Any], chunk: list[str]) -> list[bool]:
            # the claim sets as one JSON array, from each channel's serialized claims
            flags, error = await _scalar(conn, query, (*args, "[" + ",".join(chunk) + "]", change.xid))
            if error is None:
                return [bool(f) for f in flags or []]
            # a policy raised for some claim set: ask for each one alone, errors deny
            log.warning("realtime: an RLS policy of %s raised (%s); checking subscribers one by one",
                        rel.qualified, error.sqlstate)
            alone: list[bool] = []
            for k in chunk:
                flags, error = await _scalar(conn, query, (*args, f"[{k}]", change.xid))
                alone.append(error is None and bool(flags and flags[0]))
            return alone

        async def check(chunk: list[str]) -> None:
            flags = await self._on_connection(lambda conn: visible(conn, chunk))
            deliver([ch for k, ok in zip(chunk, flags, strict=False) if ok for ch in groups[k]])

        n_chunks = max(1, min(3, len(keys) // 20))
        size = -(-len(keys) // n_chunks)
        await asyncio.gather(*(check(keys[i:i + size]) for i in range(0, len(keys), size)))

    async def _dispatch(self, change: Change) -> None:
        rel = change.relation
        types = {c.name: c.typname for c in rel.columns}
        new_json = ({k: to_json_value(types.get(k, "text"), v) for k, v in change.new.items()}
                    if change.new is not None else None)
        old_src = change.old
        if change.kind == "UPDATE" and old_src is None:
            # replica identity default and an unchanged key: the identity is the new key
            pk_names = [c for c, _ in rel.pk]
            old_src = {k: v for k, v in (change.new or {}).items() if k in pk_names}
        if change.kind == "DELETE" and rel.rls and old_src is not None and rel.pk:
            pk_names = [c for c, _ in rel.pk]
            old_src = {k: v for k, v in old_src.items() if k in pk_names}
        old_json = ({k: to_json_value(types.get(k, "text"), v) for k, v in old_src.items()}
                    if old_src is not None else None)
        if change.kind == "UPDATE" and new_json is not None and old_json is not None:
            for k, v in old_json.items():  # unchanged TOAST values are only in the old image
                new_json.setdefault(k, v)
        target = (new_json if change.kind != "DELETE" else old_json) or {}
        matched: dict[Channel, list[Binding]] = {}
        for ch in list(self.pg_channels):
            for b in ch.bindings:
                if b.matches(change) and all(f.matches(target, types.get(f.column)) for f in b.filters):
                    matched.setdefault(ch, []).append(b)
        if not matched:
            return
        columns = [{"name": c.name, "type": c.typname} for c in rel.columns]
        ts = change.commit_ts
        data: dict[str, Any] = {
            "schema": rel.schema, "table": rel.table,
            "commit_timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "type": change.kind, "columns": columns, "errors": None,
        }
        if change.kind != "DELETE":
            data["record"] = new_json
        if change.kind != "INSERT":
            data["old_record"] = old_json or {}
        if len(dumps(data)) > MAX_RECORD_BYTES:
            data["errors"] = ["Error 413: Payload Too Large"]
            for name in ("record", "old_record"):
                if isinstance(data.get(name), dict):
                    data[name] = {k: v for k, v in data[name].items() if len(dumps(v)) <= 64}
        data_json = dumps(data)

        def deliver(channels: list[Channel]) -> None:
            for ch in channels:
                if ch.conn.closed:
                    continue
                bindings = matched[ch]
                body = data_json
                select = next((b.select for b in bindings if b.select), None)
                if select:
                    payload_data = dict(data)
                    for name in ("record", "old_record"):
                        if isinstance(data.get(name), dict):
                            payload_data[name] = {k: v for k, v in data[name].items() if k in select}
                    payload_data["columns"] = [c for c in columns if c["name"] in select]
                    body = dumps(payload_data)
                ids = dumps([b.id for b in bindings])
                ch.conn.send(ch.conn.ser.push_raw(ch.topic, "postgres_changes", f'{{"ids":{ids},"data":{body}}}'))

        await self._deliver_visible(rel, change, list(matched), deliver)
