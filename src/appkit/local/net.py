"""pg_net's background worker for the local stack: sends the HTTP requests queued by ``net.http_*``.

The ``pg_net`` extension appkit ships (``pgshare/extension/pg_net--*.sql``) has pg_net's SQL
surface; ``net.http_get/post/delete`` insert into ``net.http_request_queue`` and call
``net.wake()``, a ``NOTIFY appkit_net`` that Postgres delivers when the transaction commits
(never for a rolled-back one). This worker, one connection named ``pg_net worker`` (what
``net.check_worker_is_up()`` looks for), LISTENs on that channel, takes the committed queued
requests, sends them with httpx -- at most :data:`CONCURRENCY` at once, each within its own
``timeout_milliseconds`` -- and stores each outcome in ``net._http_response`` as pg_net's worker
does: the status, headers and body, or ``error_msg`` with curl's wording and ``timed_out``. A
request leaves the queue in the transaction that stores its response, so requests queued when
the stack or its database stops are sent after the restart. Responses older than ``pg_net.ttl``
are deleted. A lost connection (a database restart, ``net.worker_restart()``) is reopened with
backoff; a database without the extension is waited on, not an error.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from appkit.db.queries import load_queries

log = logging.getLogger("appkit.local.net")

CHANNEL = "appkit_net"
#: the worker connection's application_name (net.check_worker_is_up() looks for it)
APPLICATION_NAME = "pg_net worker"
USER_AGENT = "pg_net/0.19.5"
#: requests in flight at once
CONCURRENCY = 64
#: connections per httpx client; the worker spreads requests over CONCURRENCY / POOL_SIZE clients:
#: httpcore's pool spends time linear in its size on every request (one pool of 64: ~5 ms CPU a
#: request on the test machine; 16 pools of 4: ~1.7 ms)
POOL_SIZE = 4
#: seconds between two collections of expired responses (and re-reads of the queue)
SWEEP_INTERVAL = 60.0
#: seconds before reconnecting after the connection was lost (doubling up to the last)
BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)
#: seconds between two looks for finished requests while some are in flight
BUSY_WAIT = 0.02
#: responses stored per transaction at most
FLUSH_MAX = 500

_Q = load_queries("appkit.local", "net.sql")
#: set while this module sends a request: httpx's own INFO line (the URL, query string and all,
#: which may carry a key) is not logged for pg_net's requests
_SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("appkit_pg_net_sending", default=False)


class _QuietRequests(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _SENDING.get()


_HTTPX_FILTER = _QuietRequests()


@dataclass(frozen=True)
class Outcome:
    """One row of ``net._http_response``."""

    id: int
    status_code: int | None = None
    content: str | None = None
    headers: dict[str, str] | None = None
    content_type: str | None = None
    timed_out: bool | None = None
    error_msg: str | None = None


def _text(data: bytes) -> str | None:
    """A response body as Postgres ``text`` holds it (UTF-8, no NUL); None when empty, as pg_net."""
    if not data:
        return None
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _request_headers(raw: Any) -> dict[str, str]:
    """pg_net sends each key/value of the ``headers`` object, and its User-Agent when there are any."""
    if not isinstance(raw, dict):
        return {}
    out = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    out.setdefault("User-Agent", USER_AGENT)
    return out


def _error_text(exc: BaseException) -> str:
    """curl's message for what went wrong (pg_net stores ``curl_easy_strerror``)."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "Unsupported protocol"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text \
                or "no address associated" in text or "getaddrinfo" in text:
            return "Couldn't resolve host name"
        return "Couldn't connect to server"
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending" in str(exc) or "Server disconnected" in str(exc):
            return "Server returned nothing (no headers, no data)"
        return "Weird server reply"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "Failure when receiving data from the peer" if isinstance(exc, httpx.ReadError) \
            else "Failed sending data to the peer"
    if isinstance(exc, httpx.InvalidURL):
        return "URL using bad/illegal format or missing URL"
    if isinstance(exc, httpx.TooManyRedirects):
        return "Number of redirects hit maximum amount"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _timeout_text(timeout_ms: int, elapsed: float, connected: bool) -> str:
    total = elapsed * 1000
    handshake, http = (0.0, total) if connected else (total, 0.0)
    return (f"Timeout of {timeout_ms} ms reached. Total time: {total:f} ms (DNS time: {0.0:f} ms, "
            f"TCP/SSL handshake time: {handshake:f} ms, HTTP Request/Response time: {http:f} ms)")


async def send(client: httpx.AsyncClient, row: dict[str, Any]) -> Outcome:
    """Send one queued request; every failure becomes an error outcome, never an exception."""
    rid = int(row["id"])
    timeout_ms = int(row["timeout_milliseconds"])
    started = time.monotonic()
    connected = False
    try:
        request = client.build_request(
            str(row["method"]).upper(), str(row["url"]), headers=_request_headers(row["headers"]),
            content=bytes(row["body"]) if row["body"] is not None else None,
            timeout=httpx.Timeout(max(timeout_ms, 1) / 1000),
        )
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, TypeError) as exc:
        return Outcome(rid, timed_out=False, error_msg=_error_text(exc))
    try:
        async with asyncio.timeout(max(timeout_ms, 1) / 1000):
            response = await client.send(request, stream=True)
            connected = True
            try:
                body = await response.aread()
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException) as exc:
        connected = connected or not isinstance(exc, httpx.ConnectTimeout)
        return Outcome(rid, timed_out=True, error_msg=_timeout_text(timeout_ms, time.monotonic() - started, connected))
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        return Outcome(rid, timed_out=False, error_msg=_error_text(exc))
    except (OSError, ValueError, UnicodeError) as exc:  # what a hostile server can still provoke
        return Outcome(rid, timed_out=False, error_msg=_error_text(exc))
    headers: dict[str, str] = {}
    for key, value in response.headers.raw:  # as the server spelled them, as curl reports them
        headers[key.decode("latin-1")] = value.decode("latin-1").replace("\x00", "")
    return Outcome(
        rid, status_code=response.status_code, content=_text(body), headers=headers,
        content_type=response.headers.get("content-type"), timed_out=False,
    )


class NetWorker:
    """Sends ``net.http_request_queue`` to the network; ``run()`` until cancelled."""

    def __init__(self, conninfo: str, *, concurrency: int = CONCURRENCY,
                 sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.conninfo = conninfo
        self.concurrency = concurrency
        self.sweep_interval = sweep_interval
        self._woken = True
        self._busy: set[int] = set()
        self._done: list[Outcome] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self) -> None:
        logging.getLogger("httpx").addFilter(_HTTPX_FILTER)  # once: a filter is added only if absent
        tls = httpx.create_ssl_context()  # one for all clients (each would load the CA bundle: ~0.6 MB)
        clients = [
            httpx.AsyncClient(
                verify=tls,
                limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
                follow_redirects=True, trust_env=False, timeout=httpx.Timeout(5.0),
            )
            for _ in range(max(self.concurrency // POOL_SIZE, 1))
        ]
        attempt = 0
        try:
            while True:
                try:
                    conn = await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, application_name=APPLICATION_NAME, prepare_threshold=None,
                    )
                except (psycopg.Error, OSError) as exc:
                    await self._pause(attempt, exc)
                    attempt += 1
                    continue
                attempt = 0
                log.debug("pg_net worker: connected")
                try:
                    async with conn:
                        await conn.execute(f"listen {CHANNEL}")
                        await self._serve(conn, clients)
                except (psycopg.Error, OSError) as exc:
                    await self._pause(attempt, exc)
                    attempt += 1
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for client in clients:
                await client.aclose()

    async def _pause(self, attempt: int, exc: BaseException) -> None:
        delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
        log.debug("pg_net worker: connection lost (%s); retrying in %.2fs", str(exc).strip().splitlines()[:1], delay)
        await asyncio.sleep(delay)

    async def _serve(self, conn: psycopg.AsyncConnection[Any], clients: list[httpx.AsyncClient]) -> None:
        """Claim, send, store; wait for a notification when idle. Responses the previous
        connection could not store are stored first."""
        await self._expire(conn)
        next_sweep = time.monotonic() + self.sweep_interval
        self._woken = True  # on (re)connect: whatever was queued meanwhile
        while True:
            if self._done:
                await self._flush(conn)
            if self._woken and self._room():
                self._woken = False
                await self._claim(conn, clients)
            if time.monotonic() >= next_sweep:
                await self._expire(conn)
                next_sweep = time.monotonic() + self.sweep_interval
                self._woken = True
            if self._done or (self._woken and self._room()):
                continue
            # notifications that arrived during the queries above are delivered at once (psycopg
            # keeps them); with requests in flight, look again soon to store their outcomes
            wait = BUSY_WAIT if self._busy else max(next_sweep - time.monotonic(), 0.01)
            async for _ in conn.notifies(timeout=wait, stop_after=1):
                self._woken = True

    def _room(self) -> int:
        """How many more requests may be taken now (in flight or waiting to be stored)."""
        return max(self.concurrency * 4 - len(self._busy), 0)

    async def _claim(self, conn: psycopg.AsyncConnection[Any], clients: list[httpx.AsyncClient]) -> None:
        try:
            cur = await conn.execute(_Q["batch_size"])
            row = await cur.fetchone()
            batch = max(1, int(row[0])) if row else 200
            cur = conn.cursor(row_factory=dict_row)
            batch = min(batch, self._room())
            await cur.execute(_Q["claim_requests"], {"busy": list(self._busy), "limit": batch})
            rows = await cur.fetchall()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedFunction):
            return  # pg_net is not installed in this database (yet)
        except psycopg.errors.DataError as exc:
            log.warning("pg_net worker: pg_net.batch_size is not a number: %s", exc.diag.message_primary)
            return
        if len(rows) >= batch:
            self._woken = True  # more may be queued
        if rows:
            log.debug("pg_net worker: sending %d requests", len(rows))
        for r in rows:
            rid = int(r["id"])
            self._busy.add(rid)
            task = asyncio.create_task(self._send_one(clients[rid % len(clients)], r), name=f"pg_net-{rid}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_one(self, client: httpx.AsyncClient, row: dict[str, Any]) -> None:
        async with self._slots:
            _SENDING.set(True)  # this task's context only
            try:
                outcome = await send(client, row)
            except Exception as exc:  # a bug must cost one error row, never the worker or a lost request
                log.warning("pg_net worker: request %s failed unexpectedly: %s", row["id"], type(exc).__name__)
                outcome = Outcome(int(row["id"]), timed_out=False, error_msg=f"internal error: {type(exc).__name__}")
        self._done.append(outcome)

    async def _flush(self, conn: psycopg.AsyncConnection[Any]) -> None:
        batch, self._done = self._done[:FLUSH_MAX], self._done[FLUSH_MAX:]
        ids = [o.id for o in batch]
        try:
            async with conn.transaction():
                await conn.execute(_Q["store_responses"], {
                    "ids": ids, "status": [o.status_code for o in batch], "content": [o.content for o in batch],
                    "headers": [Jsonb(o.headers) if o.headers is not None else None for o in batch],
                    "content_type": [o.content_type for o in batch], "timed_out": [o.timed_out for o in batch],
                    "error": [o.error_msg for o in batch],
                })
                await conn.execute(_Q["dequeue"], {"ids": ids})
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            pass  # the extension was dropped meanwhile: nothing to store into
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._done[:0] = batch  # stored after the reconnect
            raise
        self._busy.difference_update(ids)
        log.debug("pg_net worker: stored %d responses", len(ids))

    async def _expire(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            await conn.execute(_Q["expire_responses"])
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            pass
        except psycopg.errors.DataError as exc:  # a pg_net.ttl that is not an interval
            log.warning("pg_net worker: pg_net.ttl is not an interval: %s", exc.diag.message_primary)
