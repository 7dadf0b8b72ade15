"""Serving the studio with uvicorn on a loopback address: in the foreground (``appkit studio``) or on a
background thread beside the local stack (``appkit dev``)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading

import uvicorn

from appkit import errors
from appkit.studio.app import create_app
from appkit.studio.target import StudioTarget

DEFAULT_PORT = 54323  # Supabase Studio's


def _check_loopback(host: str) -> None:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise errors.ConfigError(f"the studio listens on a loopback address only, not {host!r}")


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise errors.ConfigError(f"invalid studio port {port}: use 1-65535")
    _check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise errors.ConfigError(f"cannot listen on {host}:{port} for the studio: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class StudioServer:
    """The studio bound to ``host:port`` (bound at construction, so a busy port fails early)."""

    def __init__(self, target: StudioTarget, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                 log_level: str = "warning") -> None:
        self._sock = _bind(host, port)
        self.host = host
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(create_app(target), log_level=log_level, access_log=False, lifespan="on",
                                server_header=False, proxy_headers=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM."""
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        finally:
            self._sock.close()

    def start(self) -> None:
        """Serve on a daemon thread (uvicorn installs no signal handlers off the main thread: the caller
        owns them); :meth:`stop` ends it."""
        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._server.serve(sockets=[self._sock]))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="appkit-studio", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()


def serve(target: StudioTarget, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
    """Serve the studio for ``target`` in the foreground."""
    StudioServer(target, port=port, host=host).serve()
