"""Realtime through the SDK against the local stack: typed postgres changes under RLS,
broadcast, presence, and the thread-backed iterator of the sync client."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import BaseModel

from appkit import AsyncAppKit, col, errors
from appkit.realtime import Change
from tests.sdk_support import PASSWORD, Note, app, make_async_app, new_email, require, sdk_schema, signed_up
from tests.support import StackHandle

__all__ = ["app", "sdk_schema"]


class Chat(BaseModel):
    text: str
    n: int
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _realtime(stack: StackHandle, sdk_schema: None) -> None:
    require(stack, "realtime", "rest", "auth")


async def _user(app: AsyncAppKit) -> AsyncAppKit:
    return app.as_user(await app.auth.sign_up(email=new_email(), password=PASSWORD))


async def test_typed_changes_insert_update_delete(stack: StackHandle) -> None:
    async with make_async_app(stack) as app:
        me = await _user(app)
        notes = me.table(Note)
        async with me.realtime.changes(Note) as stream:
            n = await notes.insert(Note(body="rt-1"))

            async def next_about_n() -> Change[Note]:
                # DELETEs are not RLS-filtered (as on Supabase: the old record is only the
                # key), so other tests' deletes on the shared table may arrive: skip them
                while True:
                    got: Change[Note] = await stream.get(timeout=10)
                    row = got.new if got.new is not None else got.old
                    if row is not None and row.id == n.id:
                        return got

            change = await next_about_n()
            assert change.event == "INSERT"
            assert isinstance(change.new, Note) and change.new.id == n.id and change.new.body == "rt-1"
            await notes.update(n.id, body="rt-2")
            change = await next_about_n()
            assert change.event == "UPDATE"
            assert change.new is not None and change.new.body == "rt-2"
            assert change.old is not None and change.old.id == n.id
            await notes.delete(n.id)
            change = await next_about_n()
            assert change.event == "DELETE" and change.old is not None and change.old.id == n.id
        await me.aclose()


async def test_changes_respect_rls_and_filters(stack: StackHandle) -> None:
    async with make_async_app(stack) as app:
        alice, bob = await _user(app), await _user(app)
        async with bob.realtime.changes(Note, events="INSERT") as bob_stream, \
                alice.realtime.changes(Note, events="INSERT", where=col(Note.tag).eq("wanted")) as filtered:
            await alice.table(Note).insert(Note(body="alice private", tag="other"))
            await alice.table(Note).insert(Note(body="alice wanted", tag="wanted"))
            mine = await bob.table(Note).insert(Note(body="bob's"))
            first = await bob_stream.get(timeout=10)
            assert first.new is not None and first.new.id == mine.id  # alice's rows never reached bob
            got = await filtered.get(timeout=10)
            assert got.new is not None and got.new.body == "alice wanted"
            with pytest.raises(errors.Timeout):
                await filtered.get(timeout=0.5)
        await alice.aclose()
        await bob.aclose()


async def test_broadcast_and_presence(stack: StackHandle) -> None:
    async with make_async_app(stack) as app:
        a, b = await _user(app), await _user(app)
        topic = f"room-{uuid.uuid4().hex[:6]}"
        async with b.realtime.broadcast(topic, event="msg") as inbox:
            await a.realtime.send(topic, "msg", {"text": "hi"})
            message = await inbox.get(timeout=10)
            assert (message.event, message.payload) == ("msg", {"text": "hi"})
        async with b.realtime.broadcast(topic, event="chat", payload_type=Chat) as typed:
            await a.realtime.send(topic, "chat", Chat(text="typed", n=2))
            got = await typed.get(timeout=10)
            assert got.payload == Chat(text="typed", n=2)
            await a.realtime.send(topic, "chat", {"text": "no n"})
            with pytest.raises(errors.ValidationError):
                await typed.get(timeout=10)
        presence = a.realtime.presence(f"{topic}-p", key="alice")
        async with presence:
            await presence.track({"status": "online"})
            for _ in range(10):
                event = await presence.get(timeout=10)
                if "alice" in event.state:
                    break
            assert presence.state()["alice"][0]["status"] == "online"
        await a.aclose()
        await b.aclose()


async def test_iteration_and_callbacks(stack: StackHandle) -> None:
    async with make_async_app(stack) as app:
        me = await _user(app)
        got: list[Change[Note]] = []
        sub = await me.realtime.on_changes(Note, got.append, events="INSERT")
        stream = me.realtime.changes(Note, events="INSERT")
        await stream.start()
        await me.table(Note).insert(Note(body="cb"))
        async for change in stream:
            assert change.new is not None and change.new.body == "cb"
            break
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        assert [c.new.body for c in got if c.new] == ["cb"]
        await sub.aclose()
        await stream.aclose()
        await me.aclose()


def test_sync_thread_backed_iterator(stack: StackHandle, app) -> None:  # type: ignore[no-untyped-def]
    me = app.as_user(signed_up(app))
    try:
        with me.realtime.changes(Note, events="INSERT") as stream:
            n = me.table(Note).insert(Note(body="from sync"))
            change = stream.get(timeout=10)
            assert change.new is not None and change.new.id == n.id
            me.table(Note).insert(Note(body="second"))
            for change in stream:
                assert change.new is not None and change.new.body == "second"
                break
        import threading

        seen: list[Change[Note]] = []
        arrived = threading.Event()
        sub = me.realtime.on_changes(Note, lambda c: (seen.append(c), arrived.set()), events="INSERT")
        me.table(Note).insert(Note(body="callback"))
        assert arrived.wait(10)
        assert seen[0].new is not None and seen[0].new.body == "callback"
        sub.close()
        with me.realtime.presence(f"sync-{uuid.uuid4().hex[:6]}", key="me") as presence:
            presence.track({"status": "here"})
            for _ in range(10):
                if "me" in presence.get(timeout=10).state:
                    break
            assert presence.state()["me"][0]["status"] == "here"
    finally:
        me.realtime.close()


async def test_stream_survives_a_dropped_socket(stack: StackHandle) -> None:
    async with make_async_app(stack) as app:
        me = await _user(app)
        async with me.realtime.changes(Note, events="INSERT") as stream:
            client = await me.realtime.client()
            ws = client._ws_connection
            assert ws is not None
            await ws.close()  # the socket drops; the official client reconnects and rejoins
            channel = stream.channel
            assert channel is not None
            for _ in range(200):
                if client.is_connected and client._ws_connection is not ws and channel.is_joined:
                    break
                await asyncio.sleep(0.05)
            assert channel.is_joined
            n = await me.table(Note).insert(Note(body="after reconnect"))
            change = await stream.get(timeout=10)
            assert change.new is not None and change.new.id == n.id
        await me.aclose()
