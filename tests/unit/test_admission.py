"""The gateway's admission queue: a limit on requests in the services, first come first
served, slots given back by slow requests, nothing queued that must not be."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from appkit.local.admission import Admission


class Recorder:
    """An ASGI app whose requests wait until released; it records the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"].strip("/")
        self.started.append(name)
        await self.gate(name).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def client(app: Admission) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_requests_beyond_the_limit_wait_and_start_in_arrival_order() -> None:
    inner = Recorder()
    gate = Admission(inner, limit=2, hold=60)
    async with client(gate) as http:
        tasks = []
        for name in ("a", "b", "c", "d", "e"):
            tasks.append(asyncio.create_task(http.get(f"/{name}")))
            count = len(tasks)
            await wait_until(lambda: len(inner.started) + gate.queued == count)  # noqa: B023 - awaited here
        assert inner.started == ["a", "b"] and gate.queued == 3
        inner.gate("b").set()
        await wait_until(lambda: len(inner.started) == 3)
        assert inner.started[2] == "c"  # the longest waiting request gets the freed slot
        for name in "acde":
            inner.gate(name).set()
        bodies = [r.text for r in await asyncio.gather(*tasks)]
    assert bodies == ["a", "b", "c", "d", "e"]
    assert inner.started == ["a", "b", "c", "d", "e"]
    assert gate.queued == 0


async def test_a_slow_request_gives_its_slot_back_after_hold() -> None:
    inner = Recorder()
    gate = Admission(inner, limit=1, hold=0.05)
    async with client(gate) as http:
        slow = asyncio.create_task(http.get("/slow"))
        await wait_until(lambda: inner.started == ["slow"])
        inner.gate("fast").set()
        r = await asyncio.wait_for(http.get("/fast"), 5)  # admitted while /slow still runs
        assert r.text == "fast" and not slow.done()
        inner.gate("slow").set()
        assert (await slow).text == "slow"
    # the slow request's own release at its end does not free a second slot
    assert gate._free == 1


async def test_health_metrics_and_websockets_are_never_queued() -> None:
    inner = Recorder()
    gate = Admission(inner, limit=1, hold=60)
    async with client(gate) as http:
        busy = asyncio.create_task(http.get("/busy"))
        await wait_until(lambda: inner.started == ["busy"])
        for path in ("/health", "/metrics"):
            inner.gate(path.strip("/")).set()
            assert (await asyncio.wait_for(http.get(path), 5)).status_code == 200
        inner.gate("busy").set()
        await busy
    seen: list[str] = []

    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    ws_gate = Admission(ws_app, limit=1, hold=60)
    ws_gate._free = 0  # every slot taken: a WebSocket still passes
    await asyncio.wait_for(ws_gate({"type": "websocket", "path": "/realtime/v1/websocket"}, None, None), 5)  # type: ignore[arg-type]
    assert seen == ["websocket"]


async def test_a_client_gone_while_queued_does_not_leak_its_slot() -> None:
    inner = Recorder()
    gate = Admission(inner, limit=1, hold=60)
    async with client(gate) as http:
        first = asyncio.create_task(http.get("/first"))
        await wait_until(lambda: inner.started == ["first"])
        gone = asyncio.create_task(http.get("/gone"))
        await wait_until(lambda: gate.queued == 1)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        inner.gate("first").set()
        inner.gate("next").set()
        await first
        assert (await asyncio.wait_for(http.get("/next"), 5)).text == "next"
    assert inner.started == ["first", "next"] and gate._free == 1


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        Admission(Recorder(), limit=0)
    with pytest.raises(ValueError):
        Admission(Recorder(), hold=0)
