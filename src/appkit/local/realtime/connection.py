"""One WebSocket connection: its outgoing queue and writer, its reader and heartbeat timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from appkit.local.realtime.protocol import Frame, FrameError, Serializer

if TYPE_CHECKING:
    from appkit.local.realtime.channels import Channel
    from appkit.local.realtime.service import RealtimeService

log = logging.getLogger("appkit.local.realtime")


#: seconds without any frame (clients heartbeat every 25-30 s) before a socket is dropped
HEARTBEAT_TIMEOUT = 60.0


#: close code sent to a socket whose outgoing queue overflowed (slow consumer)
SLOW_CONSUMER_CLOSE = 1013


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
