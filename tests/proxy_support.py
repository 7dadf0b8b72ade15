"""A loopback TCP proxy that can cut connections mid-stream: real interruptions for upload tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from urllib.parse import urlsplit


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``cut_next_after(n)`` drops the next connection
    that sends more than ``n`` request bytes; ``cut_all`` drops every connection at its first bytes."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{parts.scheme}://127.0.0.1:{self.port}"
        self.connections = 0
        self.cuts = 0
        self.cut_all = False
        self.throttle = 0.0  # seconds to wait per forwarded request read (64 KiB at most)
        self._cut_after: int | None = None
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_after(self, n: int) -> None:
        with self._lock:
            self._cut_after = n

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self.connections += 1
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _cut(self, *socks: socket.socket) -> None:
        self.cuts += 1
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.shutdown(socket.SHUT_RDWR)  # wakes the other pump's recv (close alone would not)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                s.close()

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        sent = 0
        limit: int | None = None
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            sent += len(data)
            with self._lock:
                if limit is None and self._cut_after is not None and sent > self._cut_after:
                    limit, self._cut_after = self._cut_after, None
            if self.cut_all or limit is not None:
                self._cut(client, upstream)
                return
            if self.throttle:
                time.sleep(self.throttle)
            try:
                upstream.sendall(data)
            except OSError:
                break
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                return
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
