"""A local HTTP server for tests that need an endpoint to call: it records every request.

Paths: ``/echo`` (200, JSON naming what arrived), ``/slow?ms=N`` (answers after N ms),
``/hang`` (answers once :meth:`HttpSink.release` is called), ``/drop`` (closes the
connection without answering), anything else 200 ``ok``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class HttpSink:
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def release(self) -> None:
        self.released.set()

    def wait_for(self, n: int, timeout: float = 15, path: str | None = None) -> list[Seen]:
        """The requests seen (to ``path`` if given) once there are at least ``n``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                got = [s for s in self.seen if path is None or s.path == path]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} requests to {path or 'the sink'}, saw {len(got)}")
                self.lock.wait(left)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def start_sink() -> HttpSink:
    holder: list[HttpSink] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            sink = holder[0]
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()},
                        body)
            with sink.lock:
                sink.seen.append(seen)
                sink.lock.notify_all()
            if parts.path == "/drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if parts.path == "/slow":
                time.sleep(int(seen.query.get("ms", ["1000"])[0]) / 1000)
            if parts.path == "/hang":
                sink.released.wait(60)
            out = json.dumps({"method": self.command, "path": parts.path}).encode() if parts.path == "/echo" else b"ok"
            ctype = "application/json" if parts.path == "/echo" else "text/plain"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("X-Sink", "yes")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_DELETE = _handle

    ThreadingHTTPServer.request_queue_size = 256  # many concurrent connections (the default backlog is 5)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink = HttpSink(server)
    holder.append(sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return sink
