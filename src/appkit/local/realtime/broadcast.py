"""Broadcast: client messages, ``/api/broadcast`` and database-originated messages, fanned out to subscribers."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appkit.local.jsonbody import BadJson, loads
from appkit.local.realtime.cdc import Change
from appkit.local.realtime.channels import Channel, Channels, fan_out, too_large
from appkit.local.realtime.protocol import Frame


class Broadcast(Channels):
    """Delivering broadcast messages."""

    async def client_broadcast(self, ch: Channel, frame: Frame) -> None:
        payload = frame.payload
        if not isinstance(payload, dict):
            return
        if ch.private:
            if ch.can_write_broadcast is None:
                ch.can_write_broadcast = await self.write_policy(ch.sub_topic, ch.claims, "broadcast")
            if not ch.can_write_broadcast:
                return
        if too_large(payload, self.limits.max_payload_bytes):
            if ch.ack:
                ch.conn.reply(frame, "error", {"reason": "PayloadTooLarge: Payload size exceeded"})
            return
        self.deliver_broadcast(ch.key, payload, sender=ch)
        if ch.ack:
            ch.conn.reply(frame, "ok", {})

    def deliver_broadcast(self, key: tuple[str, bool], payload: dict[str, Any], sender: Channel | None) -> int:
        return fan_out(self.topics, key, "broadcast", payload,
                       lambda ch: (ch is not sender or ch.self_broadcast) and (not ch.private or ch.can_read_broadcast))

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
            if too_large(msg.get("payload", {}), self.limits.max_payload_bytes):
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
