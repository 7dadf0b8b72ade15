"""Supabase Realtime for the local stack: Phoenix channels at ``/realtime/v1/websocket``.

Broadcast (client fan-out, ``/api/broadcast``, database-originated ``realtime.send``),
Presence, and Postgres Changes read from logical decoding with per-subscriber RLS.
See docs/realtime.md.
"""

from __future__ import annotations

from appkit.local.realtime.service import RealtimeService, create_service

__all__ = ["RealtimeService", "create_service"]
