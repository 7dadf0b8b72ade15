"""Realtime on a private stack of its own (restartable, with small limits): reconnect
after a server restart resumes delivery; limits and the slow-consumer policy."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from tests.realtime_support import Recorder, config, wait_for, ws_url
from tests.support import StackHandle, start_stack, write_project

pytestmark = pytest.mark.integration

LIMITS = """
[realtime]
max_channels_per_client = 3
queue_size = 20
max_payload_size_in_kb = 64
max_joins_per_second = 8
"""


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackHandle, Path, int, int]]:
    workdir = tmp_path_factory.mktemp("rtstack")
    api_port, db_port = write_project(workdir, extra_config=LIMITS)
    handle = start_stack(workdir)
    try:
        yield handle, workdir, api_port, db_port
    finally:
        handle.stop()


@pytest.fixture()
async def clients() -> AsyncIterator[list[AsyncRealtimeClient]]:
    made: list[AsyncRealtimeClient] = []
    yield made
    for c in made:
        await c.close()


def _slots(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute("select slot_name, temporary from pg_replication_slots "
                            "where slot_name like 'appkit_realtime_%'").fetchall()


async def test_limits(own_stack: tuple[StackHandle, Path, int, int], clients: list[AsyncRealtimeClient]) -> None:
    stack = own_stack[0]
    c = AsyncRealtimeClient(ws_url(stack), stack.anon_key, auto_reconnect=False)
    await c.connect()
    clients.append(c)
    states: list[Any] = []
    for i in range(4):
        rec = Recorder()
        ch = c.channel(f"limit-{i}", config())
        await ch.subscribe(rec.state)
        states.append(rec.states[-1])
    assert [s for s, _ in states[:3]] == [RealtimeSubscribeStates.SUBSCRIBED] * 3
    assert states[3][0] == RealtimeSubscribeStates.CHANNEL_ERROR
    assert "ChannelRateLimitReached" in str(states[3][1])

    async with httpx.AsyncClient() as http:
        r = await http.post(stack.api_url + "/realtime/v1/api/broadcast", headers={"apikey": stack.anon_key},
                            json={"messages": [{"topic": "t", "event": "e", "payload": {"x": "y" * 70_000}}]})
        assert r.status_code == 413


async def test_joins_per_second(own_stack: tuple[StackHandle, Path, int, int],
                                clients: list[AsyncRealtimeClient]) -> None:
    stack = own_stack[0]
    await asyncio.sleep(1.1)  # a fresh one-second window
    errors: list[str] = []
    ok = 0
    for i in range(4):
        c = AsyncRealtimeClient(ws_url(stack), stack.anon_key, auto_reconnect=False)
        await c.connect()
        clients.append(c)
        for j in range(3):
            rec = Recorder()
            await c.channel(f"rate-{i}-{j}", config()).subscribe(rec.state)
            status, err = rec.states[-1]
            if status == RealtimeSubscribeStates.SUBSCRIBED:
                ok += 1
            else:
                errors.append(str(err))
    assert ok >= 8  # the first eight in the window pass
    assert errors, "12 joins within about a second must hit a limit of 8 per second"
    assert all("ClientJoinRateLimitReached: Too many joins per second" in e for e in errors)
    await asyncio.sleep(1.1)  # leave the window clean for the next test


async def test_slow_consumer_is_dropped_others_keep_up(own_stack: tuple[StackHandle, Path, int, int],
                                                       clients: list[AsyncRealtimeClient]) -> None:
    stack = own_stack[0]
    topic = f"slow-{uuid.uuid4().hex[:6]}"
    healthy = AsyncRealtimeClient(ws_url(stack), stack.anon_key, auto_reconnect=False)
    await healthy.connect()
    clients.append(healthy)
    got = Recorder()
    ch = healthy.channel(topic, config())
    ch.on_broadcast("*", got)
    await ch.subscribe()

    port = int(stack.api_url.rsplit(":", 1)[1])
    # a raw client that joins and then never reads, with a tiny kernel receive buffer
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall((f"GET /realtime/v1/websocket?apikey={stack.anon_key}&vsn=1.0.0 HTTP/1.1\r\n"
                 f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)
    assert b" 101 " in head.split(b"\r\n", 1)[0]
    raw.sendall(_client_frame(json.dumps({"topic": f"realtime:{topic}", "event": "phx_join", "ref": "1",
                                          "join_ref": "1", "payload": {"config": {}}})))
    await asyncio.sleep(0.3)
    message = {"topic": topic, "event": "big", "payload": {"blob": "z" * 60_000}}
    async with httpx.AsyncClient() as http:
        for _ in range(20):
            r = await http.post(stack.api_url + "/realtime/v1/api/broadcast",
                                headers={"apikey": stack.service_role_key}, json={"messages": [message] * 10})
            assert r.status_code == 202
    await wait_for(lambda: len(got) == 200, timeout=60, what="the healthy client gets every message")
    # the slow socket was closed by the server with 1013 (try again later) after what it had queued
    raw.settimeout(10)
    data = bytearray()
    while chunk := await asyncio.to_thread(raw.recv, 1 << 20):
        data += chunk
    raw.close()
    assert data.endswith(b"\x88\x02\x03\xf5")
    assert data.count(b'"event":"big"') < 200


def _client_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_reconnect_after_server_restart(own_stack: tuple[StackHandle, Path, int, int],
                                              clients: list[AsyncRealtimeClient]) -> None:
    stack, workdir, _, _ = own_stack
    table = f"rt_restart_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f"create table public.{table} (id serial primary key, n int)")
        conn.execute(f"grant select on public.{table} to anon")
        conn.execute(f"alter publication supabase_realtime add table public.{table}")
    assert [s[1] for s in _slots(stack.db_url)] == [True]  # one temporary slot

    c = AsyncRealtimeClient(ws_url(stack), stack.anon_key, max_retries=30, initial_backoff=0.5)
    await c.connect()
    clients.append(c)
    got, states = Recorder(), Recorder()
    ch = c.channel(f"restart-{table}", config())
    ch.on_postgres_changes("INSERT", got, table=table, schema="public")
    await ch.subscribe(states.state)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f"insert into public.{table} (n) values (1)")
    await wait_for(lambda: len(got) == 1, what="delivery before the restart")

    stack.stop()
    restarted = start_stack(workdir)
    own_stack[0].process = restarted.process  # the module fixture stops the new process
    # the client reconnects on its own and rejoins; wait for the second SUBSCRIBED
    await wait_for(lambda: sum(1 for s, _ in states.states if s == RealtimeSubscribeStates.SUBSCRIBED) >= 2,
                   timeout=60, what="rejoin after restart")
    with psycopg.connect(restarted.db_url, autocommit=True) as conn:
        conn.execute(f"insert into public.{table} (n) values (2)")
    await wait_for(lambda: len(got) == 2, what="delivery after the restart")
    assert [m["data"]["record"]["n"] for m in got.items] == [1, 2]
    assert len(_slots(restarted.db_url)) == 1  # the old slot did not survive its session


async def test_change_feed_recovers_from_a_lost_connection(own_stack: tuple[StackHandle, Path, int, int],
                                                           clients: list[AsyncRealtimeClient]) -> None:
    stack = own_stack[0]
    table = f"rt_feed_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f"create table public.{table} (id serial primary key, n int)")
        conn.execute(f"grant select on public.{table} to anon")
        conn.execute(f"alter publication supabase_realtime add table public.{table}")
    c = AsyncRealtimeClient(ws_url(stack), stack.anon_key)
    await c.connect()
    clients.append(c)
    got = Recorder()
    ch = c.channel(f"feed-{table}", config())
    ch.on_postgres_changes("INSERT", got, table=table, schema="public")
    await ch.subscribe()
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(f"insert into public.{table} (n) values (1)")
        await wait_for(lambda: len(got) == 1, what="first change")
        query = "select pid from pg_stat_activity where application_name = 'appkit-realtime-cdc'"
        (old_pid,), = conn.execute(query).fetchall()
        conn.execute("select pg_terminate_backend(%s)", [old_pid])
        # the service reconnects with a new temporary slot (the old one died with its session)
        await wait_for(lambda: [r[0] for r in conn.execute(query).fetchall()] not in ([], [old_pid])
                       and len(_slots(stack.db_url)) == 1, timeout=20, what="a new feed connection and slot")
        conn.execute(f"insert into public.{table} (n) values (2)")
    await wait_for(lambda: len(got) == 2, what="delivery after the feed reconnected")
    assert [m["data"]["record"]["n"] for m in got.items] == [1, 2]
