"""The advisors' findings for the studio: run in a worker thread and kept (a run reads the whole catalog,
too slow to repeat on every page view); a stale run is shown while a fresh one runs in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import anyio.to_thread

from appkit.db.advisors import Finding, Level, run_advisors
from appkit.errors import AppKitError

TTL_SECONDS = 60.0

log = logging.getLogger("appkit.studio")


@dataclass(frozen=True)
class AdvisorRun:
    findings: list[Finding]
    at: float  # time.time() of the run

    def count(self, min_level: Level = Level.WARN) -> int:
        return sum(1 for f in self.findings if f.level.rank >= min_level.rank)


class AdvisorCache:
    """One advisors run shared by the pages; older than :data:`TTL_SECONDS`, it is refreshed in the background."""

    def __init__(self, db_url: str, ttl: float = TTL_SECONDS) -> None:
        self._db_url = db_url
        self._ttl = ttl
        self._run: AdvisorRun | None = None
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    @property
    def last(self) -> AdvisorRun | None:
        """The last run, however old (None before the first)."""
        return self._run

    async def _refresh(self) -> AdvisorRun:
        async with self._lock:
            findings = await anyio.to_thread.run_sync(lambda: run_advisors(self._db_url, statement_timeout=60))
            run = self._run = AdvisorRun(findings, time.time())
            return run

    async def _refresh_quietly(self) -> None:
        try:
            await self._refresh()
        except AppKitError as exc:
            log.warning("studio: advisors failed: %s", exc)

    def warm(self) -> None:
        """Start a run in the background unless one is running or a fresh result is kept."""
        run = self._run
        if (self._background is None or self._background.done()) and (
                run is None or time.time() - run.at > self._ttl):
            self._background = asyncio.get_running_loop().create_task(self._refresh_quietly())

    async def get(self, *, refresh: bool = False) -> AdvisorRun:
        """The kept run (a stale one triggers a background refresh); a new run when ``refresh`` or none is kept."""
        if refresh or self._run is None:
            return await self._refresh()
        self.warm()
        return self._run

    async def close(self) -> None:
        if self._background is not None and not self._background.done():
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await self._background
