"""Presence: tracking and untracking, ``presence_state`` on join and ``presence_diff`` to subscribers."""

from __future__ import annotations

from typing import Any

from appkit.local.realtime.channels import (
    Channel,
    Channels,
    phx_ref,
    presence_diff,
    presence_state,
    too_large,
    untrack,
)
from appkit.local.realtime.protocol import Frame


class Presence(Channels):
    """A channel's ``presence`` events."""

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
                untrack(self.presence, self.topics, ch)
            ch.conn.reply(frame, "ok", {})
            return
        if event != "track":
            ch.conn.reply(frame, "error", {"reason": "unknown presence event"})
            return
        meta_in = payload.get("payload", {})
        if not isinstance(meta_in, dict):
            ch.conn.reply(frame, "error", {"reason": "Presence track payload must be a map"})
            return
        if too_large(meta_in, self.limits.max_presence_payload_bytes):
            self.shutdown_channel(ch, "Track message size exceeded")
            return
        newly_enabled = not ch.presence_enabled
        ch.presence_enabled = True
        ref = phx_ref()
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
            ch.conn.push(ch, "presence_state", presence_state(self.presence, ch.key))
        presence_diff(self.topics, ch.key, {ch.presence_key: {"metas": [meta]}}, leaves)
