"""Connections are bounded (raw sockets against the session stack): incomplete heads and
stalled bodies are closed within the timeouts, over-long request lines and headers get
414/431 (WebSocket upgrades included), idle kept-alive connections are closed."""

from __future__ import annotations

import contextlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from appkit.local.connections import BODY_IDLE_TIMEOUT, HEAD_TIMEOUT, MAX_LINE, SERVER_LIMITS
from tests.support import StackHandle

pytestmark = pytest.mark.integration

WAIT = max(HEAD_TIMEOUT, BODY_IDLE_TIMEOUT) + 10  # the bound, plus slack for a loaded machine


def _connect(stack: StackHandle) -> socket.socket:
    url = urlsplit(stack.api_url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=WAIT)
    return sock


def _read_all(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and when it closed (monotonic)."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks), time.monotonic()


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def test_incomplete_heads_are_answered_408_and_closed(stack: StackHandle) -> None:
    socks = [_connect(stack) for _ in range(50)]
    t0 = time.monotonic()
    for s in socks:
        s.sendall(b"GET /rest/v1/ HTTP/1.1\r\nHost: x\r\nX-Partial: 1")
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(_read_all, socks))
    for s in socks:
        s.close()
    for raw, closed in results:
        assert _status(raw) == 408, raw[:200]
        assert closed - t0 < WAIT
        assert closed - t0 >= HEAD_TIMEOUT - 1


def test_a_connection_that_sends_nothing_is_closed(stack: StackHandle) -> None:
    with _connect(stack) as s:
        raw, _ = _read_all(s)
    assert raw == b""


def test_a_head_sent_a_byte_at_a_time_is_cut_off(stack: StackHandle) -> None:
    request = b"GET /auth/v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    with _connect(stack) as s:
        t0 = time.monotonic()
        s.settimeout(0.5)
        answer = b""
        for byte in request:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                answer += s.recv(65536)
                break  # the server answered (408) before we finished
            except TimeoutError:
                pass
            if time.monotonic() - t0 > WAIT:
                break
    assert _status(answer) == 408, answer[:200]
    assert time.monotonic() - t0 < WAIT


def test_a_stalled_body_is_answered_408(stack: StackHandle) -> None:
    with _connect(stack) as s:
        s.sendall(b"POST /auth/v1/token?grant_type=password HTTP/1.1\r\nHost: x\r\n"
                  b"apikey: " + stack.anon_key.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"email\":")
        raw, _ = _read_all(s)
    assert _status(raw) == 408, raw[:200]


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /rest/v1/?" + b"a" * (MAX_LINE + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /rest/v1/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_LINE + 10) + b"\r\n\r\n", 431),
    (b"GET /rest/v1/ HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 4000) for i in range(10))
     + b"\r\n", 431),
    (b"GET /rest/v1/ HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
    (b"GET /realtime/v1/websocket?vsn=1.0.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Big: "
     + b"a" * (MAX_LINE + 10) + b"\r\n\r\n", 431),
], ids=["long-url", "long-header", "big-head", "many-headers", "websocket-long-header"])
def test_oversized_heads_are_refused(stack: StackHandle, request_bytes: bytes, status: int) -> None:
    with _connect(stack) as s:
        t0 = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request_bytes)
        raw, closed = _read_all(s)
    assert _status(raw) == status, raw[:200]
    assert b"connection: close" in raw.lower()
    assert closed - t0 < HEAD_TIMEOUT, "answered at once, then closed"


def test_headers_within_the_limits_are_served(stack: StackHandle) -> None:
    with _connect(stack) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_LINE - 100) + b"\r\n"
                  + b"".join(b"X-H%d: 1\r\n" % i for i in range(50)) + b"Connection: close\r\n\r\n")
        raw, _ = _read_all(s)
    assert _status(raw) == 200, raw[:200]


def test_an_idle_kept_alive_connection_is_closed(stack: StackHandle) -> None:
    with _connect(stack) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += s.recv(65536)
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(body) < length:  # the whole first response, however TCP split it
            body += s.recv(65536)
        assert _status(first) == 200
        t0 = time.monotonic()
        rest, closed = _read_all(s)
    assert rest == b""
    assert closed - t0 < SERVER_LIMITS["timeout_keep_alive"] + 10


def test_a_large_body_in_the_heads_chunk_is_not_counted_as_head(stack: StackHandle) -> None:
    body = b'{"a":' * 20000
    with _connect(stack) as s:
        s.sendall(b"POST /rest/v1/rpc/nothing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        raw, _ = _read_all(s)
    assert 400 <= _status(raw) < 500 and _status(raw) not in (408, 414, 431), raw[:300]  # the app answered
