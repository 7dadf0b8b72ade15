"""The realtime service: Phoenix channels over WebSocket with Broadcast, Presence and
Postgres Changes, as Supabase Realtime serves them at ``/realtime/v1``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jwt
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from appkit._jwt import EXPIRED_JWT
from appkit.errors import AuthError
from appkit.local.context import StackContext
from appkit.local.jsonbody import BadJson, loads
from appkit.local.realtime.cdc import Change, ChangeFeed, Relation
from appkit.local.realtime.protocol import SUPPORTED_VSN, Frame, FrameError, Serializer, dumps
from appkit.local.realtime.values import Filter, FilterError, parse_filters, to_json_value

log = logging.getLogger("appkit.local.realtime")
T = TypeVar("T")

PG_EVENTS = ("*", "INSERT", "UPDATE", "DELETE")
MAX_RECORD_BYTES = 1024 * 1024
#: close code sent to a socket whose outgoing queue overflowed (slow consumer)
SLOW_CONSUMER_CLOSE = 1013
#: seconds without any frame (clients heartbeat every 25-30 s) before a socket is dropped
HEARTBEAT_TIMEOUT = 60.0


@dataclass
class Limits:
    max_channels_per_client: int = 100
    max_joins_per_second: int = 500
    max_events_per_second: int = 1000
    max_payload_bytes: int = 3000 * 1024
    max_presence_payload_bytes: int = 10 * 1024
    queue_size: int = 4096

    @classmethod
    def from_config(cls, section: Any) -> Limits:
        limits = cls()
        for name in (
            "max_channels_per_client", "max_joins_per_second", "max_events_per_second", "queue_size",
        ):
            value = getattr(section, name, None)
            if isinstance(value, int) and value > 0:
                setattr(limits, name, value)
        kb = getattr(section, "max_payload_size_in_kb", None)
        if isinstance(kb, int) and kb > 0:
            limits.max_payload_bytes = kb * 1024
        return limits


class TokenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Binding:
    id: int
    event: str
    schema: str
    table: str | None
    filters: list[Filter]
    params: dict[str, Any]
    select: list[str] | None = None

    def matches(self, change: Change) -> bool:
        rel = change.relation
        if self.schema not in ("*", rel.schema):
            return False
        if self.table not in (None, "*", rel.table):
            return False
        return self.event in ("*", change.kind)


@dataclass(eq=False)
class Channel:
    conn: Connection
    topic: str
    sub_topic: str
    join_ref: str | None
    private: bool
    self_broadcast: bool
    ack: bool
    presence_key: str
    presence_enabled: bool
    token: str
    claims: dict[str, Any]
    bindings: list[Binding] = field(default_factory=list)
    can_read_broadcast: bool = True
    can_read_presence: bool = True
    can_write_broadcast: bool | None = None
    can_write_presence: bool | None = None
    presence_ref: str | None = None
    expiry: asyncio.TimerHandle | None = None

    @property
    def key(self) -> tuple[str, bool]:
        return (self.sub_topic, self.private)

    _claims_key: tuple[str, str] | None = None

    @property
    def claims_key(self) -> str:
        """Channels with equal claims share one RLS evaluation per change (cached per token;
        the claims are always those of ``token``)."""
        cached = self._claims_key
        if cached is None or cached[0] != self.token:
            cached = self._claims_key = (self.token, dumps({k: self.claims[k] for k in sorted(self.claims)}))
        return cached[1]


def _binding_id(params: dict[str, Any]) -> int:
    raw = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return (zlib.crc32(raw) & 0x7FFFFFF) or 1


def _phx_ref() -> str:
    return "F" + secrets.token_urlsafe(12)


class Connection:
    """One WebSocket: a reader, a writer draining a bounded queue, and its channels."""

    def __init__(self, svc: RealtimeService, ws: WebSocket, serializer: Serializer, apikey: str) -> None:
        self.svc = svc
        self.ws = ws
        self.ser = serializer
        self.apikey = apikey
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=svc.limits.queue_size)
        self.channels: dict[str, Channel] = {}
        self.closed = False
        self.overflowed = False
        self._events: deque[float] = deque()
        self._done = asyncio.Event()

    # -- outgoing ------------------------------------------------------------------
    def send(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            # Slow consumer: drop the connection rather than buffer without bound or
            # stall the fan-out to everybody else; the client reconnects and rejoins.
            log.warning("realtime: closing a slow consumer (%d messages queued)", self.queue.qsize())
            self.overflowed = True
            self.closed = True
            self._done.set()

    def push(self, ch: Channel, event: str, payload: Any) -> None:
        self.send(self.ser.push(ch.topic, event, payload))

    def reply(self, frame: Frame, status: str, response: Any) -> None:
        self.send(self.ser.reply(frame.join_ref, frame.ref, frame.topic, status, response))

    def system(self, ch: Channel, extension: str, status: str, message: str) -> None:
        self.push(ch, "system", {"channel": ch.sub_topic, "extension": extension, "message": message,
                                 "status": status})

    async def _writer(self) -> None:
        send, queue = self.ws.send, self.queue
        while True:
            item = await queue.get()
            while item is not None:
                await send({"type": "websocket.send", "text": item})
                # drain what is already queued without a round through the event loop
                if queue.empty():
                    break
                item = queue.get_nowait()
            if item is None:
                return

    async def _reader(self) -> None:
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.receive(), HEARTBEAT_TIMEOUT)
            except TimeoutError:
                # like Phoenix: a client silent for a minute (no heartbeat) is gone
                log.info("realtime: closing a socket silent for %ss", HEARTBEAT_TIMEOUT)
                break
            if msg["type"] == "websocket.disconnect":
                break
            text = msg.get("text")
            raw = msg.get("bytes")
            try:
                if text is not None:
                    frame = self.ser.decode(text)
                elif raw is not None:
                    frame = self.ser.decode_binary(bytes(raw))
                else:
                    continue
            except FrameError as exc:
                log.debug("realtime: dropped a malformed frame: %s", exc)
                continue
            try:
                await self.svc.handle(self, frame)
            except Exception:
                # like a crashed Phoenix channel: that channel errors, the socket lives on
                log.exception("realtime: error handling %r on %r", frame.event, frame.topic)
                ch = self.channels.pop(frame.topic, None)
                if ch is not None:
                    self.svc.remove_channel(ch)
                    self.send(self.ser.push(frame.topic, "phx_error", {}, join_ref=ch.join_ref, ref=ch.join_ref))
                elif frame.ref is not None:
                    self.reply(frame, "error", {"reason": "Unknown Error on Channel"})

    async def run(self) -> None:
        reader = asyncio.create_task(self._reader())
        writer = asyncio.create_task(self._writer())
        done_wait = asyncio.create_task(self._done.wait())
        try:
            await asyncio.wait({reader, writer, done_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.closed = True
            for task in (reader, writer, done_wait):
                task.cancel()
            for task in (reader, writer, done_wait):
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await task
            for ch in list(self.channels.values()):
                self.svc.remove_channel(ch)
            self.channels.clear()
            with contextlib.suppress(Exception):
                await self.ws.close(SLOW_CONSUMER_CLOSE if self.overflowed else 1000)

    def close(self) -> None:
        self.closed = True
        self._done.set()

    def rate_ok(self) -> bool:
        now = time.monotonic()
        while self._events and now - self._events[0] > 1.0:
            self._events.popleft()
        if len(self._events) >= self.svc.limits.max_events_per_second:
            return False
        self._events.append(now)
        return True


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


class RealtimeService:
    name = "realtime"

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.limits = Limits.from_config(ctx.config.realtime)
        self.topics: dict[tuple[str, bool], set[Channel]] = {}
        #: topic -> presence key -> phx_ref -> (channel, meta)
        self.presence: dict[tuple[str, bool], dict[str, dict[str, tuple[Channel, dict[str, Any]]]]] = {}
        self.pg_channels: set[Channel] = set()
        self.connections: set[Connection] = set()
        self._joins: deque[float] = deque()
        self._pool: AsyncConnectionPool | None = None
        self._privileges: dict[tuple[str, int], tuple[bool, float]] = {}
        #: roles a token may name (those `authenticator` can become); None: not known
        self._roles: set[str] | None = None
        self.feed: ChangeFeed | None = None
        self.app: ASGIApp = Starlette(routes=[
            WebSocketRoute("/websocket", self.websocket),
            WebSocketRoute("/websocket/", self.websocket),
            Route("/api/broadcast", self.http_broadcast, methods=["POST"]),
            Route("/api/broadcast/{topic:path}/events/{event}", self.http_broadcast_one, methods=["POST"]),
            Route("/api/ping", self.ping, methods=["GET"]),
        ])

    def gauges(self) -> dict[str, tuple[str, float]]:
        """Gauges for ``/metrics``: name -> (description, value)."""
        return {
            "connections": ("Open realtime WebSocket connections", len(self.connections)),
            "channels": ("Channels joined over all connections", sum(len(c.channels) for c in self.connections)),
        }

    # -- lifecycle -------------------------------------------------------------------
    async def startup(self) -> None:
        self._pool = await self.ctx.pool("realtime", max_size=6)
        async with self._pool.connection() as conn:
            # like PostgREST, a token may only act as a role the authenticator can become
            cur = await conn.execute(
                "select rolname::text from pg_roles where exists (select 1 from pg_roles a "
                "where a.rolname = 'authenticator') and pg_has_role('authenticator', oid, 'MEMBER')")
            self._roles = {str(r[0]) for r in await cur.fetchall()} or None
            # Supabase keeps realtime.messages for 72 hours (daily partitions); so do we
            with contextlib.suppress(psycopg.Error):
                await conn.execute("delete from realtime.messages where inserted_at < now() - interval '72 hours'")
        self.feed = ChangeFeed(self.ctx.conninfo(), self.on_changes, lookup=self.pool.connection)
        await self.feed.start()

    async def shutdown(self) -> None:
        for conn in list(self.connections):
            conn.close()
        if self.feed is not None:
            await self.feed.stop()
            self.feed = None

    @property
    def pool(self) -> AsyncConnectionPool:
        assert self._pool is not None, "realtime service not started"
        return self._pool

    # -- auth --------------------------------------------------------------------------
    def verify(self, token: str | None) -> dict[str, Any]:
        """Claims of a valid token, or TokenError with Supabase Realtime's reason text."""
        if not token:
            raise TokenError("InvalidJWTToken: Fields `role` and `exp` are required in JWT")
        token = "".join(token.split())
        try:
            claims = self.ctx.keys.verify(token)
        except AuthError as exc:
            if exc.code == EXPIRED_JWT:
                try:
                    exp = int(jwt.decode(token, options={"verify_signature": False}).get("exp", 0))
                except (jwt.PyJWTError, TypeError, ValueError):
                    exp = int(time.time())
                ago = max(0, int(time.time()) - exp)
                raise TokenError(f"InvalidJWTToken: Token has expired {ago} seconds ago") from None
            try:
                jwt.get_unverified_header(token)
                jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                raise TokenError("MalformedJWT: The token provided is not a valid JWT") from None
            raise TokenError("JwtSignatureError: Failed to validate JWT signature") from None
        if "role" not in claims or "exp" not in claims:
            raise TokenError("InvalidJWTToken: Fields `role` and `exp` are required in JWT")
        if self._roles is not None and str(claims["role"]) not in self._roles:
            raise TokenError(f"Unauthorized: role {str(claims['role'])!r} is not allowed")
        return claims

    async def read_policies(self, topic: str, claims: dict[str, Any]) -> tuple[bool, bool]:
        """(broadcast read, presence read) for ``topic`` under RLS on realtime.messages."""
        try:
            async with self.pool.connection() as conn, conn.transaction(force_rollback=True):
                cur = await conn.execute(
                    "insert into realtime.messages (topic, extension) values (%s, 'broadcast'), (%s, 'presence') "
                    "returning id, extension", (topic, topic))
                ids = {str(ext): i for i, ext in await cur.fetchall()}
                await self._set_claims(conn, topic, claims)
                cur = await conn.execute(
                    "select extension from realtime.messages where topic = %s and id = any(%s)",
                    (topic, list(ids.values())))
                seen = {str(r[0]) for r in await cur.fetchall()}
        except psycopg.Error as exc:
            log.info("realtime: read authorization for %r failed: %s", topic, exc)
            return False, False
        return "broadcast" in seen, "presence" in seen

    async def write_policy(self, topic: str, claims: dict[str, Any], extension: str) -> bool:
        try:
            async with self.pool.connection() as conn, conn.transaction(force_rollback=True):
                await self._set_claims(conn, topic, claims)
                try:
                    async with conn.transaction():
                        await conn.execute(
                            "insert into realtime.messages (topic, extension) values (%s, %s)", (topic, extension))
                except psycopg.errors.InsufficientPrivilege:
                    return False
        except psycopg.Error as exc:
            log.info("realtime: write authorization for %r failed: %s", topic, exc)
            return False
        return True

    @staticmethod
    async def _set_claims(conn: psycopg.AsyncConnection[Any], topic: str, claims: dict[str, Any]) -> None:
        await conn.execute(
            "select set_config('role', %s, true), set_config('realtime.topic', %s, true), "
            "set_config('request.jwt.claims', %s, true), set_config('request.headers', '{}', true), "
            "set_config('request.jwt.claim.sub', %s, true), set_config('request.jwt.claim.role', %s, true)",
            (str(claims.get("role", "anon")), topic, dumps(claims), str(claims.get("sub", "")),
             str(claims.get("role", ""))),
        )

    # -- websocket ----------------------------------------------------------------------
    async def websocket(self, ws: WebSocket) -> None:
        vsn = ws.query_params.get("vsn", "1.0.0")
        apikey = ws.query_params.get("apikey") or ws.headers.get("apikey") or ""
        if vsn not in SUPPORTED_VSN:
            await ws.close(code=1008)
            return
        try:
            self.verify(apikey)
        except TokenError:
            await ws.close(code=1008)  # before accept: the handshake is refused with 403
            return
        await ws.accept()
        conn = Connection(self, ws, Serializer(vsn), apikey)
        self.connections.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)

    async def handle(self, conn: Connection, frame: Frame) -> None:
        if frame.topic == "phoenix":
            if frame.event == "heartbeat":
                conn.reply(frame, "ok", {})
            return
        if frame.event == "phx_join":
            await self.join(conn, frame)
            return
        ch = conn.channels.get(frame.topic)
        if ch is None or (frame.join_ref is not None and ch.join_ref is not None and frame.join_ref != ch.join_ref):
            if frame.event != "phx_leave":
                conn.reply(frame, "error", {"reason": "unmatched topic"})
            else:
                conn.reply(frame, "ok", {})
            return
        if frame.event == "phx_leave":
            conn.reply(frame, "ok", {})
            self.remove_channel(ch)
            conn.channels.pop(ch.topic, None)
            return
        if frame.event == "access_token":
            await self.refresh_token(ch, frame)
            return
        if not conn.rate_ok():
            self.shutdown_channel(ch, "Too many messages per second")
            return
        if frame.event == "broadcast":
            await self.client_broadcast(ch, frame)
        elif frame.event == "presence":
            await self.client_presence(ch, frame)

    # -- join / leave ------------------------------------------------------------------
    def _join_rate_ok(self) -> bool:
        now = time.monotonic()
        while self._joins and now - self._joins[0] > 1.0:
            self._joins.popleft()
        if len(self._joins) >= self.limits.max_joins_per_second:
            return False
        self._joins.append(now)
        return True

    async def join(self, conn: Connection, frame: Frame) -> None:
        topic = frame.topic
        if not topic.startswith("realtime:"):
            conn.reply(frame, "error", {"reason": "unmatched topic"})
            return
        sub_topic = topic[len("realtime:"):]
        if not sub_topic:
            conn.reply(frame, "error", {"reason": "TopicNameRequired: You must provide a topic name"})
            return
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
        assert isinstance(config, dict)
        existing = conn.channels.pop(topic, None)
        if existing is not None:  # duplicate join: Phoenix closes the old channel first
            self.remove_channel(existing)
            conn.send(conn.ser.push(topic, "phx_close", {}, join_ref=existing.join_ref, ref=existing.join_ref))
        if len(conn.channels) >= self.limits.max_channels_per_client:
            conn.reply(frame, "error", {"reason": "ChannelRateLimitReached: Too many channels"})
            return
        if not self._join_rate_ok():
            conn.reply(frame, "error", {"reason": "ClientJoinRateLimitReached: Too many joins per second"})
            return
        token = payload.get("access_token") or payload.get("user_token") or conn.apikey
        if not isinstance(token, str) or token.startswith("sb_"):
            token = conn.apikey
        try:
            claims = self.verify(token)
        except TokenError as exc:
            conn.reply(frame, "error", {"reason": exc.reason})
            return
        broadcast = config.get("broadcast") if isinstance(config.get("broadcast"), dict) else {}
        presence = config.get("presence") if isinstance(config.get("presence"), dict) else {}
        assert isinstance(broadcast, dict) and isinstance(presence, dict)
        key = presence.get("key")
        ch = Channel(
            conn=conn, topic=topic, sub_topic=sub_topic, join_ref=frame.join_ref or frame.ref,
            private=bool(config.get("private", False)),
            self_broadcast=bool(broadcast.get("self", False)), ack=bool(broadcast.get("ack", False)),
            presence_key=str(key) if key else secrets.token_hex(16),
            presence_enabled=bool(presence.get("enabled", True)),
            token=token, claims=claims,
        )
        if ch.private:
            ch.can_read_broadcast, ch.can_read_presence = await self.read_policies(sub_topic, claims)
            if not (ch.can_read_broadcast or ch.can_read_presence):
                reason = f"Unauthorized: You do not have permissions to read from this Channel topic: {sub_topic}"
                conn.reply(frame, "error", {"reason": reason})
                return
        replayed: list[dict[str, Any]] = []
        if "replay" in broadcast and broadcast["replay"] is not None:
            replay = await self._replay(ch, broadcast["replay"])
            if isinstance(replay, str):
                conn.reply(frame, "error", {"reason": replay})
                return
            replayed = replay
        binding_error: str | None = None
        raw_bindings = config.get("postgres_changes")
        response_bindings: list[dict[str, Any]] = []
        if isinstance(raw_bindings, list):
            for raw in raw_bindings:
                if not isinstance(raw, dict):
                    continue
                params = dict(raw)
                bid = _binding_id(params)
                response_bindings.append({**params, "id": bid})
                try:
                    ch.bindings.append(self._binding(bid, params))
                except FilterError as exc:
                    binding_error = str(exc)
        if binding_error is None and ch.bindings:
            binding_error = await self._check_binding_columns(ch.bindings)
        if conn.closed:
            return
        conn.channels[topic] = ch
        self.topics.setdefault(ch.key, set()).add(ch)
        self._arm_expiry(ch)
        conn.reply(frame, "ok", {"postgres_changes": response_bindings})
        for message in replayed:
            conn.push(ch, "broadcast", message)
        if response_bindings:
            if binding_error is None:
                self.pg_channels.add(ch)
                conn.system(ch, "postgres_changes", "ok", "Subscribed to PostgreSQL")
            else:
                ch.bindings = []
                conn.system(ch, "postgres_changes", "error",
                            f"Unable to subscribe to changes with given parameters: {binding_error}")
        if ch.presence_enabled and (not ch.private or ch.can_read_presence):
            conn.push(ch, "presence_state", self._presence_state(ch.key))

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

    def _arm_expiry(self, ch: Channel) -> None:
        if ch.expiry is not None:
            ch.expiry.cancel()
        exp = ch.claims.get("exp")
        if isinstance(exp, (int, float)):
            delay = min(max(0.0, float(exp) - time.time()), 3600.0)
            ch.expiry = asyncio.get_running_loop().call_later(delay + 0.05, self._check_expiry, ch)

    def _check_expiry(self, ch: Channel) -> None:
        if ch.conn.channels.get(ch.topic) is not ch:
            return
        try:
            ch.claims = self.verify(ch.token)
        except TokenError as exc:
            self.shutdown_channel(ch, exc.reason.split(": ", 1)[-1])
            return
        self._arm_expiry(ch)

    def shutdown_channel(self, ch: Channel, message: str) -> None:
        """Supabase's shutdown: a system error message, then phx_close."""
        conn = ch.conn
        conn.system(ch, "system", "error", message)
        conn.send(conn.ser.push(ch.topic, "phx_close", {}, join_ref=ch.join_ref, ref=ch.join_ref))
        self.remove_channel(ch)
        if conn.channels.get(ch.topic) is ch:
            del conn.channels[ch.topic]

    def remove_channel(self, ch: Channel) -> None:
        if ch.expiry is not None:
            ch.expiry.cancel()
            ch.expiry = None
        members = self.topics.get(ch.key)
        if members is not None:
            members.discard(ch)
            if not members:
                del self.topics[ch.key]
        self.pg_channels.discard(ch)
        if ch.presence_ref is not None:
            self._untrack(ch)

    async def refresh_token(self, ch: Channel, frame: Frame) -> None:
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        token = payload.get("access_token")
        if not isinstance(token, str) or not token or token.startswith("sb_") or token == ch.token:
            return
        try:
            claims = self.verify(token)
        except TokenError as exc:
            self.shutdown_channel(ch, exc.reason.split(": ", 1)[-1])
            return
        if ch.private:
            can_b, can_p = await self.read_policies(ch.sub_topic, claims)
            if (ch.can_read_broadcast and not can_b) or (ch.can_read_presence and not can_p):
                self.shutdown_channel(
                    ch, f"You no longer have permission to read from this Channel topic: {ch.sub_topic}")
                return
            ch.can_read_broadcast, ch.can_read_presence = can_b, can_p
            ch.can_write_broadcast = ch.can_write_presence = None
        ch.token, ch.claims = token, claims
        self._arm_expiry(ch)

    # -- broadcast ------------------------------------------------------------------------
    def _too_large(self, payload: Any, limit: int) -> bool:
        return len(dumps(payload)) > limit

    async def client_broadcast(self, ch: Channel, frame: Frame) -> None:
        payload = frame.payload
        if not isinstance(payload, dict):
            return
        if ch.private:
            if ch.can_write_broadcast is None:
                ch.can_write_broadcast = await self.write_policy(ch.sub_topic, ch.claims, "broadcast")
            if not ch.can_write_broadcast:
                return
        if self._too_large(payload, self.limits.max_payload_bytes):
            if ch.ack:
                ch.conn.reply(frame, "error", {"reason": "PayloadTooLarge: Payload size exceeded"})
            return
        self.deliver_broadcast(ch.key, payload, sender=ch)
        if ch.ack:
            ch.conn.reply(frame, "ok", {})

    def deliver_broadcast(self, key: tuple[str, bool], payload: dict[str, Any], sender: Channel | None) -> int:
        members = self.topics.get(key)
        if not members:
            return 0
        encoded: dict[str, str] = {}
        n = 0
        for ch in list(members):
            if ch is sender and not ch.self_broadcast:
                continue
            if ch.private and not ch.can_read_broadcast:
                continue
            ser = ch.conn.ser
            text = encoded.get(ser.vsn)
            if text is None:
                text = encoded[ser.vsn] = ser.push("realtime:" + key[0], "broadcast", payload)
            ch.conn.send(text)
            n += 1
        return n

    async def _http_claims(self, request: Request) -> dict[str, Any] | Response:
        apikey = request.headers.get("apikey") or request.query_params.get("apikey")
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else apikey
        if not apikey and not token:
            return JSONResponse({"message": "Unauthorized: missing apikey"}, status_code=401)
        try:
            if apikey and apikey != token:
                self.verify(apikey)
            return self.verify(token)
        except TokenError as exc:
            return JSONResponse({"message": exc.reason}, status_code=401)

    async def _send_http(self, claims: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        write_cache: dict[str, bool] = {}
        for msg in messages:
            topic = str(msg["topic"])
            if topic.startswith("realtime:"):
                topic = topic[len("realtime:"):]
            private = bool(msg.get("private", False))
            if private:
                if topic not in write_cache:
                    write_cache[topic] = await self.write_policy(topic, claims, "broadcast")
                if not write_cache[topic]:
                    continue
            payload = {"type": "broadcast", "event": msg["event"], "payload": msg.get("payload", {})}
            self.deliver_broadcast((topic, private), payload, sender=None)

    async def http_broadcast(self, request: Request) -> Response:
        claims = await self._http_claims(request)
        if isinstance(claims, Response):
            return claims
        try:
            body = loads(await request.body())
        except BadJson:
            return JSONResponse({"message": "request body must be JSON"}, status_code=400)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return JSONResponse({"message": "messages must be a non-empty list",
                                 "errors": {"messages": ["can't be blank"]}}, status_code=422)
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or not isinstance(msg.get("topic"), str) or not msg["topic"] \
                    or not isinstance(msg.get("event"), str) or not isinstance(msg.get("payload", {}), dict):
                return JSONResponse({"message": f"messages[{i}] needs a topic, an event and an object payload",
                                     "errors": {"messages": [f"invalid message at index {i}"]}},
                                    status_code=422)
            if self._too_large(msg.get("payload", {}), self.limits.max_payload_bytes):
                return JSONResponse({"message": "Payload size exceeded"}, status_code=413)
        await self._send_http(claims, messages)
        return Response(status_code=202)

    async def http_broadcast_one(self, request: Request) -> Response:
        claims = await self._http_claims(request)
        if isinstance(claims, Response):
            return claims
        if "json" not in request.headers.get("content-type", "application/json"):
            return JSONResponse({"message": "only JSON payloads are supported"}, status_code=415)
        raw = await request.body()
        if len(raw) > self.limits.max_payload_bytes:
            return JSONResponse({"message": "Payload size exceeded"}, status_code=413)
        try:
            payload = loads(raw) if raw else None
        except BadJson:
            return JSONResponse({"message": "request body must be JSON"}, status_code=400)
        if payload is None:
            return JSONResponse({"message": "payload is required"}, status_code=422)
        private = request.query_params.get("private", "false").lower() == "true"
        await self._send_http(claims, [{"topic": request.path_params["topic"], "event": request.path_params["event"],
                                        "payload": payload, "private": private}])
        return Response(status_code=202)

    async def ping(self, _: Request) -> Response:
        return JSONResponse({"message": "Success"})

    # -- presence -------------------------------------------------------------------------
    def _presence_state(self, key: tuple[str, bool]) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for pkey, refs in self.presence.get(key, {}).items():
            if refs:
                state[pkey] = {"metas": [meta for _, meta in refs.values()]}
        return state

    def _presence_diff(self, key: tuple[str, bool], joins: dict[str, Any], leaves: dict[str, Any]) -> None:
        payload = {"joins": joins, "leaves": leaves}
        encoded: dict[str, str] = {}
        for ch in list(self.topics.get(key, ())):
            if not ch.presence_enabled or (ch.private and not ch.can_read_presence):
                continue
            ser = ch.conn.ser
            text = encoded.get(ser.vsn)
            if text is None:
                text = encoded[ser.vsn] = ser.push("realtime:" + key[0], "presence_diff", payload)
            ch.conn.send(text)

    def _untrack(self, ch: Channel) -> None:
        refs = self.presence.get(ch.key, {}).get(ch.presence_key, {})
        entry = refs.pop(ch.presence_ref or "", None)
        ch.presence_ref = None
        if not refs:
            self.presence.get(ch.key, {}).pop(ch.presence_key, None)
        if not self.presence.get(ch.key, True):
            self.presence.pop(ch.key, None)
        if entry is not None:
            self._presence_diff(ch.key, {}, {ch.presence_key: {"metas": [entry[1]]}})

    async def client_presence(self, ch: Channel, frame: Frame) -> None:
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        event = payload.get("event")
        if ch.private:
            if ch.can_write_presence is None:
                ch.can_write_presence = await self.write_policy(ch.sub_topic, ch.claims, "presence")
            if not ch.can_write_presence:
                ch.conn.reply(frame, "error", {})
                return
        if event == "untrack":
            if ch.presence_ref is not None:
                self._untrack(ch)
            ch.conn.reply(frame, "ok", {})
            return
        if event != "track":
            ch.conn.reply(frame, "error", {"reason": "unknown presence event"})
            return
        meta_in = payload.get("payload", {})
        if not isinstance(meta_in, dict):
            ch.conn.reply(frame, "error", {"reason": "Presence track payload must be a map"})
            return
        if self._too_large(meta_in, self.limits.max_presence_payload_bytes):
            self.shutdown_channel(ch, "Track message size exceeded")
            return
        newly_enabled = not ch.presence_enabled
        ch.presence_enabled = True
        ref = _phx_ref()
        meta = {**meta_in, "phx_ref": ref}
        refs = self.presence.setdefault(ch.key, {}).setdefault(ch.presence_key, {})
        leaves: dict[str, Any] = {}
        if ch.presence_ref is not None and ch.presence_ref in refs:
            _, old_meta = refs.pop(ch.presence_ref)
            meta["phx_ref_prev"] = ch.presence_ref
            leaves = {ch.presence_key: {"metas": [old_meta]}}
        refs[ref] = (ch, meta)
        ch.presence_ref = ref
        ch.conn.reply(frame, "ok", {})
        if newly_enabled and (not ch.private or ch.can_read_presence):
            ch.conn.push(ch, "presence_state", self._presence_state(ch.key))
        self._presence_diff(ch.key, {ch.presence_key: {"metas": [meta]}}, leaves)

    # -- postgres changes --------------------------------------------------------------------
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

    def _db_broadcast(self, change: Change) -> None:
        row = change.new or {}
        if row.get("extension") != "broadcast" or not row.get("topic"):
            return
        try:
            payload = json.loads(row.get("payload") or "null")
        except ValueError:
            payload = None
        msg = {"type": "broadcast", "event": row.get("event"), "payload": payload if payload is not None else {},
               "meta": {"id": row.get("id")}}
        self.deliver_broadcast((str(row["topic"]), row.get("private") == "t"), msg, sender=None)

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
