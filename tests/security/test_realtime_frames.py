"""Hostile frames on realtime's WebSocket: hypothesis sends random Phoenix frames (random JSON
with deep nesting, NUL characters, lone surrogates, huge numbers and wrong types; wrong
topics, events and refs; both serializers' shapes; binary and truncated binary pushes) on a
real socket. The server must keep the socket open, answer a heartbeat after them, give
Realtime's error replies rather than an internal error, and keep serving another client.

The long run of the same generator is ``benchmarks/fuzz_services.py --services websocket``."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.connection import Connection

from tests.fuzz_frames import WsFrame, batches, exchange, heartbeat, open_socket
from tests.support import StackHandle

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("APPKIT_FUZZ_EXAMPLES", "150"))
_probes = itertools.count(1)


#: where the stack's log stood when this module started
_log_start: dict[str, int] = {}


def stack_log(stack: StackHandle) -> Path:
    return stack.workdir / "stack-test.log"


@pytest.fixture(scope="module")
def witness(stack: StackHandle) -> Iterator[Connection]:
    """Another client, joined to a broadcast channel for the whole module."""
    _log_start["offset"] = stack_log(stack).stat().st_size
    with open_socket(stack.api_url, stack.anon_key, "1.0.0") as ws:
        ws.send(json.dumps({"topic": "realtime:witness", "event": "phx_join", "ref": "1", "join_ref": "1",
                            "payload": {"config": {"broadcast": {"self": True}}}}))
        reply = json.loads(ws.recv(timeout=30))
        assert reply["payload"]["status"] == "ok", reply
        yield ws


def witness_broadcast(ws: Connection, n: int) -> None:
    ws.send(json.dumps({"topic": "realtime:witness", "event": "broadcast", "ref": f"w{n}", "join_ref": "1",
                        "payload": {"type": "broadcast", "event": "ping", "payload": {"n": n}}}))
    while True:
        message = json.loads(ws.recv(timeout=30))
        if message["event"] == "broadcast" and message["payload"]["payload"] == {"n": n}:
            return


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(batch=batches())
def test_hostile_frames_get_realtime_answers_not_internal_errors(
    stack: StackHandle, witness: Connection, batch: tuple[str, list[WsFrame]],
) -> None:
    vsn, frames = batch
    n = next(_probes)
    outcome = exchange(stack.api_url, stack.anon_key, vsn, frames, f"probe-{n}")
    assert outcome.problem is None, f"{outcome.problem}: vsn={vsn} {frames!r}"
    heartbeat(witness, "1.0.0", f"witness-{n}")  # the other client is still served


def test_other_clients_keep_their_channels_and_no_handler_raised(stack: StackHandle, witness: Connection) -> None:
    witness_broadcast(witness, 1)
    with stack_log(stack).open("rb") as log:
        log.seek(_log_start["offset"])
        logged = log.read().decode("utf-8", "replace")
    crashes = [line for line in logged.splitlines() if "realtime: error handling" in line]
    assert not crashes, "\n".join(crashes[:10])


def test_an_oversized_frame_closes_only_its_socket_with_1009(stack: StackHandle, witness: Connection) -> None:
    with pytest.raises(ConnectionClosed) as info, open_socket(stack.api_url, stack.anon_key, "1.0.0") as ws:
        ws.send('{"topic": "realtime:big", "event": "broadcast", "payload": "' + "x" * (17 * 2**20) + '"}')
        heartbeat(ws, "1.0.0", "after-big")
    # 1009 (message too big), never 1011 (internal error); the close frame may not reach a client
    # still writing the rest of its frame when the server hangs up
    assert info.value.rcvd is None or info.value.rcvd.code == 1009, info.value
    witness_broadcast(witness, 2)
    with open_socket(stack.api_url, stack.anon_key, "2.0.0") as ws:
        heartbeat(ws, "2.0.0", "fresh")  # new sockets are still accepted
