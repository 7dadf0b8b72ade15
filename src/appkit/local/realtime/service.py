"""The realtime service: Phoenix channels over WebSocket with Broadcast, Presence and
Postgres Changes, as Supabase Realtime serves them at ``/realtime/v1``.

This module holds the lifecycle, the socket endpoint and joins; the rest is in
``authorization.py``, ``channels.py``, ``connection.py``, ``broadcast.py``, ``presence.py``
and ``changes.py``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import deque
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from appkit.local.context import StackContext
from appkit.local.realtime.authorization import TokenError
from appkit.local.realtime.cdc import ChangeFeed
from appkit.local.realtime.changes import PostgresChanges
from appkit.local.realtime.channels import Channel, Limits, PresenceTable, Topics, binding_id, presence_state
from appkit.local.realtime.connection import Connection
from appkit.local.realtime.presence import Presence
from appkit.local.realtime.protocol import SUPPORTED_VSN, Frame, Serializer
from appkit.local.realtime.values import FilterError

log = logging.getLogger("appkit.local.realtime")


class RealtimeService(Presence, PostgresChanges):
    """The service: its lifecycle, the WebSocket endpoint, frame dispatch and channel joins."""

    name = "realtime"

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.limits = Limits.from_config(ctx.config.realtime)
        self.topics: Topics = {}
        self.presence: PresenceTable = {}
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
                bid = binding_id(params)
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
            conn.push(ch, "presence_state", presence_state(self.presence, ch.key))

    async def ping(self, _: Request) -> Response:
        return JSONResponse({"message": "Success"})


def create_service(ctx: StackContext) -> RealtimeService:
    return RealtimeService(ctx)
