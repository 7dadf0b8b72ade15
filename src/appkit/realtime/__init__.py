"""Realtime over the official ``realtime`` client: postgres changes typed as your ``Model``,
broadcast and presence, as async iterators or callbacks.

Async:

.. code-block:: python

    async with me.realtime.changes(Note, events="INSERT") as stream:   # subscribed on enter
        async for change in stream:
            print(change.event, change.new)                             # change.new is a Note

Sync (``AppKit``): the same calls return thread-backed iterators. A daemon thread runs
the async client on its own event loop; events cross to your thread through a queue:

.. code-block:: python

    with app.as_user(s).realtime.changes(Note) as stream:
        for change in stream:            # blocks; stream.get(timeout=1.0) to poll
            ...

Reconnects are handled by the official client (it rejoins every channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, overload

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from realtime import (
    AsyncRealtimeChannel,
    AsyncRealtimeClient,
    RealtimePostgresChangesListenEvent,
    RealtimeSubscribeStates,
)

from appkit import errors
from appkit.model import Filter, M, Model, _partial

if TYPE_CHECKING:
    from appkit.settings import Settings

E = TypeVar("E")
P = TypeVar("P")
BM = TypeVar("BM", bound=BaseModel)
Events = Literal["*", "INSERT", "UPDATE", "DELETE"]


class _TokenSource(Protocol):
    @property
    def core(self) -> Any: ...

    @property
    def apikey(self) -> str: ...


@dataclass(frozen=True)
class Change(Generic[M]):
    """One row change. ``new`` is the row after INSERT/UPDATE; ``old`` the row before
    UPDATE/DELETE (often only the primary key, unless the table has REPLICA IDENTITY FULL)."""

    event: Literal["INSERT", "UPDATE", "DELETE"]
    table: str
    schema: str
    commit_timestamp: str | None
    new: M | None
    old: M | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Broadcast(Generic[P]):
    """A broadcast message; ``payload`` is the ``payload_type`` model if one was given, else a dict."""

    event: str
    payload: P


@dataclass(frozen=True)
class PresenceEvent:
    """``sync`` (``state`` is the whole presence state), ``join`` or ``leave`` (``key`` and ``presences``)."""

    kind: Literal["sync", "join", "leave"]
    key: str | None
    presences: list[dict[str, Any]]
    state: dict[str, list[dict[str, Any]]]


_END = object()


def _as_model(model: type[M], data: Any) -> M | None:
    if not isinstance(data, dict) or not data:
        return None
    try:
        return model.model_validate(data)
    except PydanticValidationError:
        return _partial(model, data)


def realtime_filter(f: Filter | None) -> str | None:
    """A model filter as a postgres-changes ``filter`` string (``column=op.value``)."""
    if f is None:
        return None
    if f.column is None or (f.negate and f.op == "in"):
        raise errors.ValidationError("realtime filters are single-column conditions", code="invalid_filter")
    return f"{f.column.name}={'not.' if f.negate else ''}{f.op}.{f.render_value()}"


class AsyncSubscription(Generic[E]):
    """An async iterator over one channel's events; ``async with`` subscribes eagerly.

    Events are buffered in an unbounded queue between callbacks and the consumer.
    ``aclose()`` (or leaving the ``async with``) unsubscribes.
    """

    def __init__(self, realtime: AsyncRealtime, topic: str,
                 setup: Callable[[AsyncRealtimeChannel, Callable[[E], None]], None],
                 options: dict[str, Any] | None = None) -> None:
        self._realtime = realtime
        self._topic = topic
        self._setup = setup
        self._options = options
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.channel: AsyncRealtimeChannel | None = None
        self._closed = False
        self._sink: Callable[[E], None] = self._queue.put_nowait
        self._end_sink: Callable[[], None] = lambda: self._queue.put_nowait(_END)

    def send_to(self, push: Callable[[E], None], end: Callable[[], None] | None = None) -> None:
        """Deliver events to ``push`` (and the end of the stream to ``end``) instead of this
        subscription's own queue; call before :meth:`start`."""
        self._sink = push
        if end is not None:
            self._end_sink = end

    def _push(self, item: E) -> None:
        self._sink(item)

    def _end(self) -> None:
        self._end_sink()

    async def start(self) -> AsyncSubscription[E]:
        if self.channel is not None:
            return self
        client = await self._realtime.client()
        existing = client.channels.get(f"realtime:{self._topic}")
        if existing is not None and not existing.is_leaving and not existing.is_closed:
            raise errors.ValidationError(
                f"this client already has a subscription on topic {self._topic!r}; close it first",
                code="duplicate_subscription")
        channel = client.channel(self._topic, self._options)  # type: ignore[arg-type]
        self._setup(channel, self._push)
        result: dict[str, Any] = {}

        def on_state(state: RealtimeSubscribeStates, error: Exception | None) -> None:
            result.setdefault("state", state)
            result.setdefault("error", error)
            # CHANNEL_ERROR after a successful join is a dropped socket: the official client
            # reconnects and rejoins, so the stream stays open. CLOSED means the server ended it.
            if state == RealtimeSubscribeStates.CLOSED and \
                    result.get("state") == RealtimeSubscribeStates.SUBSCRIBED and not self._closed:
                self._end()

        try:
            await channel.subscribe(on_state)
        except Exception as exc:
            raise errors.ServiceUnavailable(f"realtime subscribe failed: {exc}", code="realtime_error") from exc
        state = result.get("state")
        if state != RealtimeSubscribeStates.SUBSCRIBED:
            await self._realtime._remove(channel)
            err = result.get("error")
            message = f"realtime subscription to {self._topic} failed: {state}" + (f" ({err})" if err else "")
            if state == RealtimeSubscribeStates.TIMED_OUT:
                raise errors.Timeout(message, code="realtime_timeout")
            raise errors.ServiceUnavailable(message, code="realtime_error")
        self.channel = channel
        return self

    def __aiter__(self) -> AsyncSubscription[E]:
        return self

    async def __anext__(self) -> E:
        if self._closed:
            raise StopAsyncIteration
        await self.start()
        item = await self._queue.get()
        if item is _END:
            self._closed = True
            raise StopAsyncIteration
        if isinstance(item, errors.AppKitError):
            raise item
        return item  # type: ignore[no-any-return]

    async def get(self, timeout: float | None = None) -> E:
        """The next event, or ``errors.Timeout`` after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except TimeoutError:
            raise errors.Timeout("no realtime event within the timeout", code="timeout") from None

    async def aclose(self) -> None:
        self._closed = True
        self._end()
        if self.channel is not None:
            channel, self.channel = self.channel, None
            await self._realtime._remove(channel)

    async def __aenter__(self) -> AsyncSubscription[E]:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncPresence(AsyncSubscription[PresenceEvent]):
    """Presence on a topic: ``track(state)``, ``untrack()``, ``state()``, and iterate its events."""

    async def track(self, state: dict[str, Any]) -> None:
        await self.start()
        assert self.channel is not None
        try:
            await self.channel.track(state)
        except Exception as exc:
            raise errors.ServiceUnavailable(f"presence track failed: {exc}", code="realtime_error") from exc

    async def untrack(self) -> None:
        if self.channel is not None:
            await self.channel.untrack()

    def state(self) -> dict[str, list[dict[str, Any]]]:
        if self.channel is None:
            return {}
        return _presence_state(self.channel)


def _presence_state(channel: AsyncRealtimeChannel) -> dict[str, list[dict[str, Any]]]:
    raw = channel.presence_state()
    return {k: [dict(p) for p in v] for k, v in raw.items()}


class AsyncRealtime:
    """One realtime socket per client (opened on first use), authenticated as the client's caller."""

    def __init__(self, scope: Any, token: Callable[[], Awaitable[str]] | None = None) -> None:
        self._scope = scope
        self._settings: Settings = scope.core.settings
        self._token = token or scope.token
        self._client: AsyncRealtimeClient | None = None
        self._lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None

    async def client(self) -> AsyncRealtimeClient:
        """The connected official client (escape hatch)."""
        async with self._lock:
            token = await self._token()
            if self._client is None:
                client = AsyncRealtimeClient(self._settings.realtime_url, token=self._scope.apikey,
                                             timeout=int(max(1, self._settings.timeout)))
                try:
                    await client.connect()
                except Exception as exc:
                    raise errors.ServiceUnavailable(f"could not connect to realtime: {exc}",
                                                    code="realtime_error") from exc
                self._client = client
                if getattr(self._scope, "session", None) is not None:
                    self._refresher = asyncio.create_task(self._keep_token_fresh())
            if self._client.access_token != token:
                await self._client.set_auth(token)
            return self._client

    async def _keep_token_fresh(self) -> None:
        """Push the user's refreshed access token to the socket before the old one expires."""
        margin = float(self._settings.refresh_margin)
        while True:
            session = getattr(self._scope, "session", None)
            expires_at = getattr(session, "expires_at", None)
            delay = max(1.0, (expires_at - time.time() - margin + 1) if expires_at else 60.0)
            await asyncio.sleep(delay)
            try:
                token = await self._token()
                if self._client is not None and self._client.access_token != token:
                    await self._client.set_auth(token)
            except Exception:  # noqa: S112 - try again on the next round; calls surface errors
                continue

    async def _remove(self, channel: AsyncRealtimeChannel) -> None:
        if self._client is not None:
            # leaving a dead channel must not mask the caller's error
            with contextlib.suppress(Exception):
                await self._client.remove_channel(channel)

    def changes(self, model: type[M], *, events: Events = "*", where: Filter | None = None,
                topic: str | None = None) -> AsyncSubscription[Change[M]]:
        """Row changes of ``model``'s table that this caller may see (RLS applies)."""
        table = model.table_name()
        schema = model.__schema__
        flt = realtime_filter(where)

        def setup(channel: AsyncRealtimeChannel, push: Callable[[Change[M]], None]) -> None:
            def on_change(payload: Any) -> None:
                data = payload.get("data", payload) if isinstance(payload, dict) else {}
                kind = data.get("type") or data.get("eventType") or ""
                kind = kind.value if isinstance(kind, enum.Enum) else str(kind)
                push(Change(
                    event=kind.upper(),  # type: ignore[arg-type]
                    table=data.get("table", table),
                    schema=data.get("schema", schema),
                    commit_timestamp=data.get("commit_timestamp"),
                    new=_as_model(model, data.get("record")),
                    old=_as_model(model, data.get("old_record")),
                    raw=dict(data),
                ))

            channel.on_postgres_changes(RealtimePostgresChangesListenEvent(events), on_change,
                                        table=table, schema=schema, filter=flt)

        return AsyncSubscription(self, topic or f"appkit:{schema}:{table}:{id(setup)}", setup)

    @overload
    def broadcast(self, topic: str, *, event: str = ..., receive_own: bool = ..., private: bool = ...,
                  payload_type: None = ...) -> AsyncSubscription[Broadcast[dict[str, Any]]]: ...

    @overload
    def broadcast(self, topic: str, *, event: str = ..., receive_own: bool = ..., private: bool = ...,
                  payload_type: type[BM]) -> AsyncSubscription[Broadcast[BM]]: ...

    def broadcast(self, topic: str, *, event: str = "*", receive_own: bool = False, private: bool = False,
                  payload_type: type[BaseModel] | None = None) -> AsyncSubscription[Any]:
        """Broadcast messages on ``topic`` (``private`` topics are authorized by RLS on realtime.messages).

        With ``payload_type`` each payload is validated into that pydantic model; a payload that
        does not validate is raised from the iterator as ``errors.ValidationError``.
        """
        def setup(channel: AsyncRealtimeChannel, push: Callable[[Any], None]) -> None:
            def on_message(p: Any) -> None:
                body = dict(p.get("payload") or {})
                if payload_type is None:
                    push(Broadcast(event=p["event"], payload=body))
                    return
                try:
                    push(Broadcast(event=p["event"], payload=payload_type.model_validate(body)))
                except PydanticValidationError as exc:
                    push(errors.ValidationError(f"broadcast payload is not a {payload_type.__name__}",
                                                code="invalid_payload", details=exc.errors(include_url=False)))

            channel.on_broadcast(event, on_message)

        options = {"config": {"broadcast": {"self": receive_own, "ack": True}, "presence": None,
                              "private": private}}
        return AsyncSubscription(self, topic, setup, options)

    async def send(self, topic: str, event: str, payload: dict[str, Any] | BaseModel) -> None:
        """Broadcast one message on ``topic`` (joins the topic first if needed)."""
        body = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        client = await self.client()
        channel = client.channels.get(f"realtime:{topic}")
        if channel is None or not channel.is_joined:
            sub = self.broadcast(topic)  # stays joined for later sends; closed with the client
            await sub.start()
            channel = sub.channel
        assert channel is not None
        try:
            await channel.send_broadcast(event, body)
        except Exception as exc:
            raise errors.ServiceUnavailable(f"broadcast failed: {exc}", code="realtime_error") from exc

    def presence(self, topic: str, *, key: str = "") -> AsyncPresence:
        def setup(channel: AsyncRealtimeChannel, push: Callable[[PresenceEvent], None]) -> None:
            channel.on_presence_sync(lambda: push(PresenceEvent("sync", None, [], _presence_state(channel))))
            channel.on_presence_join(lambda k, cur, new: push(
                PresenceEvent("join", k, [dict(p) for p in new], _presence_state(channel))))
            channel.on_presence_leave(lambda k, cur, left: push(
                PresenceEvent("leave", k, [dict(p) for p in left], _presence_state(channel))))

        options = {"config": {"broadcast": None, "presence": {"key": key, "enabled": True}, "private": False}}
        return AsyncPresence(self, topic, setup, options)

    async def on_changes(self, model: type[M], callback: Callable[[Change[M]], None], *,
                         events: Events = "*", where: Filter | None = None) -> AsyncSubscription[Change[M]]:
        """Callback style: ``callback(change)`` runs on the event loop for each change;
        returns the (started) subscription, ``await sub.aclose()`` to stop."""
        sub = self.changes(model, events=events, where=where)
        sub.send_to(callback)
        return await sub.start()

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):  # closing a broken socket
                await client.close()


# ---------------------------------------------------------------------------
# sync: thread-backed
# ---------------------------------------------------------------------------
class _LoopThread:
    """A daemon thread running an event loop for the async realtime client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="appkit-realtime", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, E], timeout: float | None = None) -> E:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class Subscription(Generic[E]):
    """A blocking iterator over a channel's events, fed by the realtime thread.

    ``with`` subscribes eagerly and unsubscribes on exit; ``get(timeout)`` polls.
    """

    def __init__(self, owner: Realtime, make: Callable[[], AsyncSubscription[E]],
                 callback: Callable[[E], None] | None = None) -> None:
        self._owner = owner
        self._make = make
        self._callback = callback
        self._inner: AsyncSubscription[E] | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False

    def start(self) -> Subscription[E]:
        if self._inner is not None:
            return self

        async def go() -> AsyncSubscription[E]:
            inner = self._make()
            inner.send_to(self._callback or self._queue.put_nowait, lambda: self._queue.put_nowait(_END))
            return await inner.start()

        self._inner = self._owner._thread().run(go())
        return self

    def __iter__(self) -> Subscription[E]:
        return self

    def __next__(self) -> E:
        if self._closed:
            raise StopIteration
        self.start()
        item = self._queue.get()
        if item is _END:
            self._closed = True
            raise StopIteration
        if isinstance(item, errors.AppKitError):
            raise item
        return item  # type: ignore[no-any-return]

    def get(self, timeout: float | None = None) -> E:
        self.start()
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise errors.Timeout("no realtime event within the timeout", code="timeout") from None
        if item is _END:
            self._closed = True
            raise errors.ServiceUnavailable("the subscription is closed", code="realtime_closed")
        if isinstance(item, errors.AppKitError):
            raise item
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        self._closed = True
        self._queue.put_nowait(_END)
        if self._inner is not None:
            inner, self._inner = self._inner, None
            self._owner._thread().run(inner.aclose())

    def __enter__(self) -> Subscription[E]:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Presence(Subscription[PresenceEvent]):
    """Sync presence: ``track(state)``, ``untrack()``, ``state()``; iterate its events."""

    def track(self, state: dict[str, Any]) -> None:
        self.start()
        inner = self._inner
        assert isinstance(inner, AsyncPresence)
        self._owner._thread().run(inner.track(state))

    def untrack(self) -> None:
        inner = self._inner
        if isinstance(inner, AsyncPresence):
            self._owner._thread().run(inner.untrack())

    def state(self) -> dict[str, list[dict[str, Any]]]:
        inner = self._inner
        return inner.state() if isinstance(inner, AsyncPresence) else {}


class Realtime:
    """Sync realtime: the async client on a background thread (one per ``Realtime``)."""

    def __init__(self, scope: Any) -> None:
        self._scope = scope
        self._loop_thread: _LoopThread | None = None
        self._async: AsyncRealtime | None = None
        self._guard = threading.Lock()

    def _thread(self) -> _LoopThread:
        with self._guard:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            return self._loop_thread

    def _inner(self) -> AsyncRealtime:
        if self._async is None:
            scope = self._scope

            async def token() -> str:
                # the sync scope refreshes with blocking I/O: keep it off the event loop
                return await asyncio.to_thread(scope.token)

            self._async = AsyncRealtime(scope, token)
        return self._async

    def changes(self, model: type[M], *, events: Events = "*",
                where: Filter | None = None) -> Subscription[Change[M]]:
        return Subscription(self, lambda: self._inner().changes(model, events=events, where=where))

    @overload
    def broadcast(self, topic: str, *, event: str = ..., receive_own: bool = ..., private: bool = ...,
                  payload_type: None = ...) -> Subscription[Broadcast[dict[str, Any]]]: ...

    @overload
    def broadcast(self, topic: str, *, event: str = ..., receive_own: bool = ..., private: bool = ...,
                  payload_type: type[BM]) -> Subscription[Broadcast[BM]]: ...

    def broadcast(self, topic: str, *, event: str = "*", receive_own: bool = False, private: bool = False,
                  payload_type: type[BaseModel] | None = None) -> Subscription[Any]:
        return Subscription(self, lambda: self._inner().broadcast(
            topic, event=event, receive_own=receive_own, private=private, payload_type=payload_type))

    def on_changes(self, model: type[M], callback: Callable[[Change[M]], None], *, events: Events = "*",
                   where: Filter | None = None) -> Subscription[Change[M]]:
        """Callback style: ``callback(change)`` runs on the realtime thread for each change.
        Returns the started subscription; ``close()`` it to stop."""
        sub = Subscription(self, lambda: self._inner().changes(model, events=events, where=where), callback)
        return sub.start()

    def send(self, topic: str, event: str, payload: dict[str, Any] | BaseModel) -> None:
        self._thread().run(self._inner().send(topic, event, payload))

    def presence(self, topic: str, *, key: str = "") -> Presence:
        return Presence(self, lambda: self._inner().presence(topic, key=key))

    def close(self) -> None:
        if self._loop_thread is not None:
            if self._async is not None:
                self._loop_thread.run(self._async.aclose(), timeout=10)
            self._loop_thread.stop()
            self._loop_thread = None
            self._async = None


__all__ = [
    "AsyncPresence", "AsyncRealtime", "AsyncSubscription", "Broadcast", "Change", "Presence", "PresenceEvent",
    "Realtime", "Subscription", "realtime_filter",
]
_ = Model
