"""Hostile Phoenix frames for realtime's WebSocket, as hypothesis strategies, and the exchange
each batch must pass: the socket stays open, answers a heartbeat after the batch, and no
answer is an internal error (a crashed channel's ``phx_error`` or "Unknown Error on Channel").

Shared by the property test (tests/security/test_realtime_frames.py) and the long run
(benchmarks/fuzz_services.py --services websocket)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection

from tests.fuzz_support import DEEP, NASTY_TEXT, _dumps, json_value, text

EVENTS = ["phx_join", "phx_leave", "heartbeat", "broadcast", "presence", "access_token", "postgres_changes",
          "phx_reply", "system", "phx_error", "phx_close"]
topic = st.one_of(st.sampled_from(["realtime:fuzz", "realtime:fuzz-private", "realtime:", "realtime", "phoenix",
                                   "realtime:" + "x" * 300, "realtime:\x00", "realtime:\ud800"]), text)
event = st.one_of(st.sampled_from(EVENTS), text)
ref = st.one_of(st.none(), st.sampled_from(["1", "2"]), st.integers(), text, json_value)
#: payloads shaped like what each event expects, with any field wrong, or anything at all
config = st.fixed_dictionaries({}, optional={
    "broadcast": st.one_of(st.fixed_dictionaries({}, optional={"self": json_value, "ack": json_value}), json_value),
    "presence": st.one_of(st.fixed_dictionaries({}, optional={"key": json_value, "enabled": json_value}), json_value),
    "private": json_value,
    "postgres_changes": st.one_of(st.lists(st.fixed_dictionaries({}, optional={
        "event": st.one_of(st.sampled_from(["*", "INSERT", "UPDATE", "DELETE"]), text), "schema": text,
        "table": text, "filter": text}), max_size=3), json_value),
})
payload = st.one_of(
    st.fixed_dictionaries({}, optional={"config": st.one_of(config, json_value), "access_token": text}),
    st.fixed_dictionaries({}, optional={"type": st.one_of(st.just("broadcast"), st.just("presence"), text),
                                        "event": st.one_of(st.sampled_from(["track", "untrack", "x"]), text),
                                        "payload": json_value}),
    json_value,
)


@dataclass
class WsFrame:
    """One frame: text (``str``) or binary (``bytes``)."""

    data: str | bytes

    def __repr__(self) -> str:
        shown = self.data[:300]
        return f"WsFrame({shown!r}{'...' if len(self.data) > 300 else ''}, {len(self.data)} long)"


def _v1(join_ref: Any, ref_: Any, topic_: Any, event_: Any, payload_: Any) -> str:
    return _dumps({"topic": topic_, "event": event_, "payload": payload_, "ref": ref_, "join_ref": join_ref}).decode()


def _v2(join_ref: Any, ref_: Any, topic_: Any, event_: Any, payload_: Any) -> str:
    return _dumps([join_ref, ref_, topic_, event_, payload_]).decode()


def _binary_push(join_ref: bytes, ref_: bytes, topic_: bytes, event_: bytes, encoding: int, body: bytes) -> bytes:
    """supabase-js's kind-3 "user broadcast push", lengths as given (maybe lying)."""
    head = struct.pack("BBBBBB", 3, len(join_ref) % 256, len(ref_) % 256, len(topic_) % 256, len(event_) % 256,
                       encoding % 256)
    return head + join_ref + ref_ + topic_ + event_ + body


@st.composite
def frames(draw: st.DrawFn, *, v2: bool) -> WsFrame:
    kind = draw(st.sampled_from(["frame", "frame", "frame", "frame", "wrong-shape", "raw", "binary", "binary-push"]))
    if kind == "frame":
        fields = (draw(ref), draw(ref), draw(topic), draw(event), draw(payload))
        return WsFrame((_v2 if v2 else _v1)(*fields))
    if kind == "wrong-shape":  # the other serializer's shape, wrong lengths, wrong types
        value = draw(st.one_of(st.lists(json_value, max_size=7), json_value,
                               st.fixed_dictionaries({}, optional={"topic": json_value, "event": json_value,
                                                                   "payload": json_value, "ref": json_value})))
        return WsFrame(_dumps(value).decode())
    if kind == "raw":
        raw = draw(st.one_of(st.sampled_from(DEEP), st.sampled_from(NASTY_TEXT).map(lambda s: s.encode(
            "utf-8", "surrogatepass")), st.binary(max_size=64)))
        return WsFrame(raw.decode("utf-8", "replace"))
    if kind == "binary":
        return WsFrame(draw(st.one_of(st.binary(max_size=64), st.sampled_from(DEEP))))
    strings = st.one_of(st.sampled_from([b"", b"1", b"realtime:fuzz", b"broadcast", b"\xff\xfe", b"x" * 255]),
                        st.binary(max_size=20))
    body = draw(st.one_of(st.sampled_from(DEEP), st.binary(max_size=64), json_value.map(_dumps)))
    data = _binary_push(draw(strings), draw(strings), draw(strings), draw(strings),
                        draw(st.integers(0, 255)), body)
    if draw(st.booleans()):  # a truncated frame
        data = data[:draw(st.integers(0, len(data)))]
    return WsFrame(data)


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[WsFrame]]:
    """A serializer version and 1-5 frames to send on one socket."""
    vsn = draw(st.sampled_from(["1.0.0", "2.0.0"]))
    batch = draw(st.lists(frames(v2=vsn == "2.0.0"), min_size=1, max_size=5))
    if draw(st.booleans()):  # joined first, so that frames for the channel reach its handlers
        join = (_v2 if vsn == "2.0.0" else _v1)("1", "1", "realtime:fuzz", "phx_join", {"config": {
            "broadcast": {"self": True, "ack": True}, "presence": {"key": "fuzz"}}})
        batch.insert(0, WsFrame(join))
    return vsn, batch


def socket_url(api_url: str, apikey: str, vsn: str) -> str:
    return api_url.replace("http", "ws", 1) + f"/realtime/v1/websocket?apikey={apikey}&vsn={vsn}"


def open_socket(api_url: str, apikey: str, vsn: str) -> ClientConnection:
    return connect(socket_url(api_url, apikey, vsn), max_size=None, open_timeout=30, close_timeout=5,
                   compression=None)


def _fields(message: str, v2: bool) -> tuple[Any, Any, Any, Any, Any]:
    data = json.loads(message)
    if v2:
        join_ref, ref_, topic_, event_, payload_ = data
        return join_ref, ref_, topic_, event_, payload_
    return data.get("join_ref"), data.get("ref"), data["topic"], data["event"], data["payload"]


def internal_error(message: str, v2: bool) -> str | None:
    """What is wrong with one server message, if anything: not a Phoenix message, or one of the
    answers realtime gives only when handling a frame raised (a channel crash)."""
    try:
        _, _, topic_, event_, payload_ = _fields(message, v2)
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"not a Phoenix message: {message[:200]!r}"
    if event_ == "phx_error":
        return f"channel {topic_!r} crashed (phx_error)"
    if event_ == "phx_reply" and isinstance(payload_, dict):
        response = payload_.get("response")
        if payload_.get("status") == "error" and isinstance(response, dict) \
                and response.get("reason") == "Unknown Error on Channel":
            return "internal error reply (Unknown Error on Channel)"
    return None


def heartbeat(ws: Connection, vsn: str, probe: str, timeout: float = 30.0) -> list[str]:
    """Send a heartbeat with ref ``probe`` and read until its reply; the messages before it."""
    v2 = vsn == "2.0.0"
    ws.send(_v2(None, probe, "phoenix", "heartbeat", {}) if v2 else _v1(None, probe, "phoenix", "heartbeat", {}))
    seen: list[str] = []
    while True:
        message = ws.recv(timeout=timeout)
        if isinstance(message, bytes):
            seen.append(message.decode("utf-8", "replace"))
            continue
        seen.append(message)
        try:
            _, ref_, topic_, event_, _ = _fields(message, v2)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if topic_ == "phoenix" and event_ == "phx_reply" and ref_ == probe:
            return seen


@dataclass
class Outcome:
    """What one batch got: the problem found (``None``: none), and how many of the server's
    messages were Realtime error replies (``phx_reply`` with status ``error``)."""

    problem: str | None
    error_replies: int = 0


def _is_error_reply(message: str, v2: bool) -> bool:
    try:
        _, _, _, event_, payload_ = _fields(message, v2)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return event_ == "phx_reply" and isinstance(payload_, dict) and payload_.get("status") == "error"


def exchange(api_url: str, apikey: str, vsn: str, batch: list[WsFrame], probe: str) -> Outcome:
    """Send ``batch`` on a fresh socket, then a heartbeat, and check every answer."""
    v2 = vsn == "2.0.0"
    errors = 0
    try:
        with open_socket(api_url, apikey, vsn) as ws:
            for frame in batch:
                ws.send(frame.data)
            for message in heartbeat(ws, vsn, probe):
                problem = internal_error(message, v2)
                if problem is not None:
                    return Outcome(problem, errors)
                errors += _is_error_reply(message, v2)
    except ConnectionClosed as exc:
        return Outcome(f"socket closed by the server: {exc.rcvd!r}", errors)
    except TimeoutError:
        return Outcome("no heartbeat reply within 30 s", errors)
    return Outcome(None, errors)
