"""The public ``Worker``: its handler registry and configuration, and starting and stopping a run.

A ``Worker`` holds handlers (``@worker.job("emails")``); ``run()``/``serve()`` hand them to an
``appkit.jobs.runner.Run``, which claims jobs from Postgres (``SUPABASE_DB_URL``), runs the
handlers and records the outcomes, until ``stop()`` or SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any, LiteralString, TypeVar

import pydantic

from appkit.errors import ConfigError
from appkit.jobs.handler import Handler, JobContext, model_of
from appkit.jobs.models import check_name
from appkit.jobs.queries import QUERIES
from appkit.jobs.runner import Run

__all__ = ["Handler", "JobContext", "Worker", "queries"]

log = logging.getLogger("appkit.jobs")

F = TypeVar("F", bound=Callable[..., Any])


class Worker:
    """Runs job handlers for one or more queues.

    .. code-block:: python

        worker = Worker(concurrency=20)

        class Email(BaseModel):
            to: str

        @worker.job("emails", max_attempts=5)
        async def send(payload: Email) -> None: ...

        worker.run()   # until SIGTERM/SIGINT

    ``concurrency`` is the number of jobs this worker runs at once; ``batch_size`` how many it
    claims per statement (default: ``concurrency``); ``lease`` how long a claimed job stays
    this worker's without a heartbeat (heartbeats every ``lease / 3``); ``shutdown_grace`` how
    long in-flight jobs may take to finish after a stop before they are released.

    ``vacuum_threshold``: when ``appkit.jobs`` has this many dead row versions, one worker runs
    ``VACUUM`` on it (None: leave it to autovacuum, which wakes once a minute by default).
    ``synchronous_commit=False`` (default) lets the worker's own state changes (claim, done,
    heartbeat) skip the WAL flush wait; a database crash can then only make a job run again.
    ``transaction_pooler=True`` is for a URL through a pooler in transaction mode (Supavisor
    port 6543): no LISTEN (polling only), no prepared statements, no session settings.
    """

    def __init__(self, db_url: str | None = None, *, concurrency: int = 10, batch_size: int | None = None,
                 lease: float = 30.0, poll_interval: float = 1.0, shutdown_grace: float = 30.0,
                 schedules: bool = True, maintenance_interval: float = 1.0, purge_interval: float = 60.0,
                 purge_batch: int = 10000, vacuum_threshold: int | None = 100_000, synchronous_commit: bool = False,
                 transaction_pooler: bool = False, name: str | None = None) -> None:
        if concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        if lease < 1:
            raise ConfigError("lease must be at least 1 second")
        if poll_interval <= 0 or maintenance_interval <= 0 or purge_interval <= 0:
            raise ConfigError("intervals must be > 0")
        self.db_url = db_url
        self.concurrency = concurrency
        self.batch_size = batch_size or concurrency
        self.lease = float(lease)
        self.poll_interval = float(poll_interval)
        self.shutdown_grace = float(shutdown_grace)
        self.schedules = schedules
        self.maintenance_interval = float(maintenance_interval)
        self.purge_interval = float(purge_interval)
        self.purge_batch = purge_batch
        self.vacuum_threshold = vacuum_threshold
        self.synchronous_commit = synchronous_commit
        self.transaction_pooler = transaction_pooler
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.handlers: dict[str, Handler] = {}
        self._stop: asyncio.Event | None = None
        self._hard_stop = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- registry ---------------------------------------------------------------------------

    def job(self, queue: str, *, max_attempts: int | None = None, backoff: float = 1.0,
            max_backoff: float = 3600.0, model: type[pydantic.BaseModel] | None = None) -> Callable[[F], F]:
        """Register the decorated function as the handler of ``queue``.

        The function (sync or async) takes the payload, parsed into the pydantic model of its
        first parameter's annotation (or ``model``), and optionally a ``JobContext``. A payload
        that fails validation makes the job dead at once; an exception makes it retry after
        ``backoff * 2**(attempt-1)`` seconds (with jitter, at most ``max_backoff``) until
        ``max_attempts`` (default: the job's own ``max_attempts``) attempts were made.
        """
        check_name(queue)
        if max_attempts is not None and not 1 <= max_attempts <= 1000:
            raise ConfigError("max_attempts must be in 1..1000")
        if backoff < 0 or max_backoff < 0:
            raise ConfigError("backoff must be >= 0")

        def register(fn: F) -> F:
            if queue in self.handlers:
                raise ConfigError(f"queue {queue!r} already has a handler ({self.handlers[queue].fn.__qualname__})")
            found, wants_context = model_of(fn)
            self.handlers[queue] = Handler(
                queue=queue, fn=fn, model=model or found, max_attempts=max_attempts, backoff=backoff,
                max_backoff=max_backoff, is_async=inspect.iscoroutinefunction(fn), wants_context=wants_context,
            )
            return fn

        return register

    # -- running ------------------------------------------------------------------------------

    def run(self, queues: Sequence[str] | None = None) -> None:
        """Run until SIGTERM or SIGINT (a second signal stops at once, releasing in-flight jobs)."""
        asyncio.run(self.serve(queues, handle_signals=True))

    def stop(self, *, now: bool = False) -> None:
        """Ask a running worker to stop: no new claims; in-flight jobs get ``shutdown_grace`` seconds."""
        if now:
            self._hard_stop = True
        loop, event = self._loop, self._stop
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def serve(self, queues: Sequence[str] | None = None, *, handle_signals: bool = False) -> None:
        """Run in the current event loop until ``stop()`` (or a signal, with ``handle_signals``)."""
        names = list(queues) if queues else list(self.handlers)
        if not names:
            raise ConfigError("the worker has no job handlers (decorate functions with @worker.job)")
        for q in names:
            if q not in self.handlers:
                raise ConfigError(f"no handler for queue {q!r} (known: {', '.join(sorted(self.handlers)) or 'none'})")
        url = self.db_url or os.environ.get("SUPABASE_DB_URL")
        if not url:
            raise ConfigError("the worker needs a database URL: pass db_url or set SUPABASE_DB_URL")
        run = Run(self, url, names)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._hard_stop = False
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                    self._loop.add_signal_handler(sig, self._on_signal)
                    installed.append(sig)
        try:
            await run.main(self._stop)
        finally:
            for sig in installed:
                self._loop.remove_signal_handler(sig)
            self._loop = None
            self._stop = None

    @property
    def hard_stopped(self) -> bool:
        """Whether ``stop(now=True)`` (or a second signal) asked this run to release in-flight jobs at once."""
        return self._hard_stop

    def _on_signal(self) -> None:
        if self._stop is not None and self._stop.is_set():
            log.warning("second stop signal: releasing in-flight jobs now")
            self.stop(now=True)
        else:
            log.info("stopping: no new jobs; in-flight jobs have %.0f s to finish", self.shutdown_grace)
            self.stop()


def queries() -> dict[str, LiteralString]:
    """The worker's named SQL blocks (read-only view for tools and tests)."""
    return dict(QUERIES)
