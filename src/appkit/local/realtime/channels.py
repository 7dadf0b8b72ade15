"""Channels: the registry of joined channels and tracked presences by topic, a channel's
bindings, and a channel's life (token expiry, token refresh, shutdown, removal)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appkit.local.realtime.authorization import Authorization, TokenError
from appkit.local.realtime.cdc import Change
from appkit.local.realtime.protocol import Frame, dumps
from appkit.local.realtime.values import Filter

if TYPE_CHECKING:
    from appkit.local.realtime.connection import Connection


PG_EVENTS = ("*", "INSERT", "UPDATE", "DELETE")


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


def binding_id(params: dict[str, Any]) -> int:
    raw = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return (zlib.crc32(raw) & 0x7FFFFFF) or 1


def phx_ref() -> str:
    return "F" + secrets.token_urlsafe(12)


Topics = dict[tuple[str, bool], set["Channel"]]


#: topic -> presence key -> phx_ref -> (channel, meta)
PresenceTable = dict[tuple[str, bool], dict[str, dict[str, tuple["Channel", dict[str, Any]]]]]


def too_large(payload: Any, limit: int) -> bool:
    return len(dumps(payload)) > limit


class Channels(Authorization):
    """The joined channels by topic, and how a channel ends."""

    limits: Limits
    topics: Topics
    presence: PresenceTable
    pg_channels: set[Channel]

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
            untrack(self.presence, self.topics, ch)

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


def presence_state(presence: PresenceTable, key: tuple[str, bool]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for pkey, refs in presence.get(key, {}).items():
        if refs:
            state[pkey] = {"metas": [meta for _, meta in refs.values()]}
    return state


def presence_diff(topics: Topics, key: tuple[str, bool], joins: dict[str, Any], leaves: dict[str, Any]) -> None:
    fan_out(topics, key, "presence_diff", {"joins": joins, "leaves": leaves},
            lambda ch: ch.presence_enabled and (not ch.private or ch.can_read_presence))


def fan_out(topics: Topics, key: tuple[str, bool], event: str, payload: dict[str, Any],
            wants: Callable[[Channel], bool]) -> int:
    """Send ``event`` to every channel joined to ``key`` that ``wants`` it, encoding the frame
    once per serializer version; returns how many channels got it."""
    encoded: dict[str, str] = {}
    n = 0
    for ch in list(topics.get(key, ())):
        if not wants(ch):
            continue
        ser = ch.conn.ser
        text = encoded.get(ser.vsn)
        if text is None:
            text = encoded[ser.vsn] = ser.push("realtime:" + key[0], event, payload)
        ch.conn.send(text)
        n += 1
    return n


def untrack(presence: PresenceTable, topics: Topics, ch: Channel) -> None:
    refs = presence.get(ch.key, {}).get(ch.presence_key, {})
    entry = refs.pop(ch.presence_ref or "", None)
    ch.presence_ref = None
    if not refs:
        presence.get(ch.key, {}).pop(ch.presence_key, None)
    if not presence.get(ch.key, True):
        presence.pop(ch.key, None)
    if entry is not None:
        presence_diff(topics, ch.key, {}, {ch.presence_key: {"metas": [entry[1]]}})
