"""Bounded HTTP connections: uvicorn's httptools protocol with the limits it lacks.

uvicorn times out only an idle keep-alive connection; a client that opens a connection
and sends nothing, or sends headers a byte at a time, or stops halfway through a body,
holds a descriptor and a request slot forever, and an over-long header line on a
WebSocket upgrade is never answered. :class:`BoundedHttpToolsProtocol` adds, per request:

- a head deadline: the request line and headers must arrive within
  :data:`HEAD_TIMEOUT` seconds of the connection (or of the request's first byte on a
  kept-alive connection): ``408`` then close (a connection that sent nothing is closed);
- a body idle timeout: :data:`BODY_IDLE_TIMEOUT` seconds without a body byte while the
  app waits for it: ``408`` (or a close once the response started);
- size limits, answered like nginx in front of Supabase: a request line over
  :data:`MAX_LINE` bytes ``414``, a header line over :data:`MAX_LINE` bytes, more than
  :data:`MAX_HEADERS` headers or a head over :data:`MAX_HEAD` bytes ``431``.

The other bounds are uvicorn settings (:data:`SERVER_LIMITS`): keep-alive timeout,
concurrency limit (``503`` beyond it), listen backlog, WebSocket pings.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: seconds for the request line and headers to arrive
HEAD_TIMEOUT = 10.0
#: seconds without a body byte (while the app waits to read one)
BODY_IDLE_TIMEOUT = 10.0
#: bytes in the request line or in one header line (nginx's large_client_header_buffers: 8k)
MAX_LINE = 8192
#: bytes in the whole head (request line and headers)
MAX_HEAD = 32768
#: headers in one request
MAX_HEADERS = 100

#: uvicorn's own bounds, passed to ``uvicorn.Config``
SERVER_LIMITS: dict[str, Any] = {
    "timeout_keep_alive": 5,  # seconds an idle kept-alive connection stays open
    "limit_concurrency": 1000,  # connections + running requests; beyond: 503
    "backlog": 2048,
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
}


def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head/body timeouts and head size limits."""

    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading_head = True
        self._head_bytes = 0
        self._line_done = False
        self._header_count = 0
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def _cancel_timers(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # -- reading ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            if self._reading_head:
                self._account_head(data)
            self.parser.feed_data(data)
        except _Reject as exc:
            self._reject(exc.status, exc.message)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Reject):
                self._reject(exc.__context__.status, exc.__context__.message)
            else:
                self._bad_request()
        except httptools.HttpParserError:
            self._bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self._cancel_timers()
        self.send_400_response(msg)

    def _account_head(self, data: bytes) -> None:
        if self._head_bytes == 0 and self._head_timer is None:  # first byte of a kept-alive request
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)
        start = self._head_bytes
        self._head_bytes += len(data)
        if not self._line_done:
            end = data.find(b"\n")
            line_length = start + (end if end >= 0 else len(data))
            if line_length > MAX_LINE:
                raise _Reject(414, "URI Too Long")
            self._line_done = end >= 0
        if self._head_bytes > MAX_HEAD:
            raise _Reject(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_LINE:
            raise _Reject(414, "URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if len(name) + len(value) + 2 > MAX_LINE or self._header_count > MAX_HEADERS:
            raise _Reject(431, "Request Header Fields Too Large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope:
            self._body_timer = self.loop.call_later(BODY_IDLE_TIMEOUT, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = self.loop.call_later(BODY_IDLE_TIMEOUT, self._body_timed_out)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._reading_head = True
        self._head_bytes = 0
        self._line_done = False
        super().on_message_complete()

    # -- timeouts and rejections --------------------------------------------------------
    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # nothing asked: nothing to answer
        else:
            self._reject(408, "Request Timeout")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        if self.flow.read_paused:  # we stopped reading (the app is slow), not the client
            self._body_timer = self.loop.call_later(BODY_IDLE_TIMEOUT, self._body_timed_out)
            return
        started = self.cycle.response_started
        self.cycle.disconnected = True  # the app reads http.disconnect; its answer is dropped
        self.cycle.message_event.set()
        if started:
            self.transport.close()
        else:
            self._reject(408, "Request Timeout")

    def _reject(self, status: int, message: str) -> None:
        self._cancel_timers()
        self.logger.info("rejected a request: %s %s", status, message)
        body = message.encode()
        self.transport.write(b"".join([
            _status_line(status),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]))
        self.transport.close()
