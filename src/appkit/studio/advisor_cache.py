"""The advisors' findings for the studio: run in a worker thread, kept for a minute (a run reads the whole
catalog, too slow to repeat on every page view), re-run on demand."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import anyio.to_thread

from appkit.db.advisors import Finding, Level, run_advisors

TTL_SECONDS = 60.0


@dataclass(frozen=True)
class AdvisorRun:
    findings: list[Finding]
    at: float  # time.time() of the run

    def count(self, min_level: Level = Level.WARN) -> int:
        return sum(1 for f in self.findings if f.level.rank >= min_level.rank)


class AdvisorCache:
    """One advisors run shared by the pages, refreshed when older than :data:`TTL_SECONDS`."""

    def __init__(self, db_url: str, ttl: float = TTL_SECONDS) -> None:
        self._db_url = db_url
        self._ttl = ttl
        self._run: AdvisorRun | None = None
        self._lock = asyncio.Lock()

    @property
    def last(self) -> AdvisorRun | None:
        """The last run, however old (None before the first)."""
        return self._run

    async def get(self, *, refresh: bool = False) -> AdvisorRun:
        async with self._lock:
            run = self._run
            if refresh or run is None or time.time() - run.at > self._ttl:
                findings = await anyio.to_thread.run_sync(lambda: run_advisors(self._db_url, statement_timeout=60))
                run = self._run = AdvisorRun(findings, time.time())
            return run
