"""Phoenix channel frames in the two serializer versions clients negotiate with ``vsn``.

``1.0.0``: JSON objects ``{"topic", "event", "payload", "ref", "join_ref"}`` (what the
Python client speaks). ``2.0.0``: JSON arrays ``[join_ref, ref, topic, event, payload]``
(what supabase-js speaks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appkit.local.jsonbody import BadJson, loads

SUPPORTED_VSN = ("1.0.0", "2.0.0")


class FrameError(ValueError):
    pass


@dataclass(frozen=True)
class Frame:
    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: Any


def _ref(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Serializer:
    def __init__(self, vsn: str) -> None:
        if vsn not in SUPPORTED_VSN:
            raise FrameError(f"unsupported serializer version {vsn!r}")
        self.vsn = vsn
        self.v2 = vsn == "2.0.0"

    def decode(self, text: str) -> Frame:
        try:
            data = loads(text)
        except BadJson:
            raise FrameError("frame is not valid JSON") from None
        if self.v2:
            if not isinstance(data, list) or len(data) != 5:
                raise FrameError("expected [join_ref, ref, topic, event, payload]")
            join_ref, ref, topic, event, payload = data
        else:
            if not isinstance(data, dict):
                raise FrameError("expected a JSON object")
            join_ref, ref = data.get("join_ref"), data.get("ref")
            topic, event, payload = data.get("topic"), data.get("event"), data.get("payload")
        if not isinstance(topic, str) or not isinstance(event, str):
            raise FrameError("topic and event must be strings")
        return Frame(_ref(join_ref), _ref(ref), topic, event, payload if payload is not None else {})

    def decode_binary(self, data: bytes) -> Frame:
        """The 2.0.0 binary "user broadcast push" (kind 3) supabase-js sends for broadcasts:
        kind, join_ref/ref/topic/event lengths, payload encoding (1 JSON, 0 binary), the
        four strings, then the payload."""
        if not self.v2 or len(data) < 6 or data[0] != 3:
            raise FrameError("unsupported binary frame")
        jlen, rlen, tlen, elen, encoding = data[1], data[2], data[3], data[4], data[5]
        pos = 6
        parts: list[str] = []
        for n in (jlen, rlen, tlen, elen):
            if pos + n > len(data):
                raise FrameError("truncated binary frame")
            parts.append(data[pos:pos + n].decode("utf-8", "replace"))
            pos += n
        join_ref, ref, topic, user_event = parts
        if encoding != 1:
            raise FrameError("binary broadcast payloads are not supported")
        try:
            user_payload = loads(data[pos:]) if pos < len(data) else {}
        except BadJson:
            raise FrameError("broadcast payload is not valid JSON") from None
        return Frame(join_ref or None, ref or None, topic, "broadcast",
                     {"type": "broadcast", "event": user_event, "payload": user_payload})

    def reply(self, frame_join_ref: str | None, ref: str | None, topic: str, status: str,
              response: Any) -> str:
        payload = {"status": status, "response": response}
        if self.v2:
            return dumps([frame_join_ref, ref, topic, "phx_reply", payload])
        return dumps({"topic": topic, "event": "phx_reply", "payload": payload, "ref": ref})

    def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None,
             ref: str | None = None) -> str:
        if self.v2:
            return dumps([join_ref, ref, topic, event, payload])
        return dumps({"topic": topic, "event": event, "payload": payload, "ref": ref})

    def push_raw(self, topic: str, event: str, payload_json: str) -> str:
        """A push whose payload is already JSON text (fan-out encodes the payload once)."""
        if self.v2:
            return f"[null,null,{dumps(topic)},{dumps(event)},{payload_json}]"
        return f'{{"topic":{dumps(topic)},"event":{dumps(event)},"payload":{payload_json},"ref":null}}'
