"""Watches the stack's database and restarts the embedded server when it dies.

The embedded server is checked every :data:`INTERVAL` seconds without a round trip (its
``postmaster.pid`` names a live process whose status line says ``ready``); an external
database (``SUPABASE_DB_URL``) is probed with ``select 1`` on a connection of the
supervisor's own. An outage is recorded in :class:`~appkit.local.health.DatabaseHealth`
(so ``/health`` and the services answer 503 at once); a dead embedded server is started
again -- Postgres runs its crash recovery -- with backoff, and after :data:`ATTEMPTS`
failed starts the supervisor gives up and reports why through ``on_fatal``. The pools,
REST's schema listener and realtime's change feed reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psutil
import psycopg

from appkit.errors import StackError
from appkit.local.health import DatabaseHealth
from appkit.local.postgres import EmbeddedPostgres

log = logging.getLogger("appkit.local.supervisor")

#: seconds between two checks of the database
INTERVAL = 0.25
#: failed starts after which the supervisor gives up
ATTEMPTS = 5
#: seconds before each restart attempt
BACKOFF = (0.0, 0.5, 1.0, 2.0, 4.0)


class DatabaseSupervisor:
    """Keeps ``health`` current and the embedded server running; ``run()`` until cancelled."""

    def __init__(
        self, health: DatabaseHealth, *, postgres: EmbeddedPostgres | None, conninfo: str,
        on_fatal: Callable[[str], Any],
    ) -> None:
        self.health = health
        self.postgres = postgres
        self.conninfo = conninfo
        self.on_fatal = on_fatal
        self._proc: psutil.Process | None = None
        self._probe: psycopg.AsyncConnection[Any] | None = None

    async def run(self) -> None:
        try:
            while True:
                try:
                    reason = (self._embedded_problem() if self.postgres is not None
                              else await self._external_problem())
                except Exception:  # a check that fails must not end the supervision (nothing would restart postgres)
                    log.exception("database check failed; checking again")
                    self._proc = None
                    await asyncio.sleep(INTERVAL)
                    continue
                if reason is None:
                    if not self.health.up:
                        log.warning("the database is back")
                        self.health.mark_up()
                elif self.postgres is not None and self._proc is None:
                    self.health.mark_down(reason)
                    log.error("the database went down: %s; restarting it", reason)
                    if not await self._restart():
                        return
                else:
                    if self.health.up:
                        log.error("the database is unavailable: %s", reason)
                    self.health.mark_down(reason)
                await asyncio.sleep(INTERVAL)
        finally:
            if self._probe is not None:
                with contextlib.suppress(Exception):
                    await self._probe.close()

    def _embedded_problem(self) -> str | None:
        """None when the server is up; else why not (``_proc`` is None when it is dead)."""
        assert self.postgres is not None
        try:
            lines = (self.postgres.datadir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, IndexError, ValueError):
            self._proc = None
            return "postgres is not running"
        if self._proc is None or self._proc.pid != pid:
            self._proc = self.postgres._live_postmaster()
        try:
            dead = self._proc is None or not self._proc.is_running() or self._proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:  # reaped between the two calls
            dead = True
        if dead:
            self._proc = None
            return f"postgres (pid {pid}) exited"
        status = lines[7].strip() if len(lines) >= 8 else ""
        if status != "ready":
            return f"postgres is {status or 'starting'} (crash recovery)"
        return None

    async def _restart(self) -> bool:
        assert self.postgres is not None
        last = "unknown error"
        for attempt, delay in enumerate(BACKOFF[:ATTEMPTS], start=1):
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.postgres.start)
            except StackError as exc:
                last = str(exc)
                log.error("restart %d/%d of postgres failed: %s", attempt, ATTEMPTS, last)
                continue
            self._proc = None
            log.warning("postgres restarted (attempt %d)", attempt)
            self.health.mark_up(restarted=True)
            return True
        reason = f"postgres could not be restarted after {ATTEMPTS} attempts: {last}"
        self.health.mark_down(reason)
        self.on_fatal(reason)
        return False

    async def _external_problem(self) -> str | None:
        try:
            if self._probe is None or self._probe.closed:
                self._probe = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=2, application_name="appkit-supervisor",
                )
            await asyncio.wait_for(self._probe.execute("select 1"), 2)
            await asyncio.sleep(1 - INTERVAL)  # a probe a second is plenty for a remote server
            return None
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if self._probe is not None:
                with contextlib.suppress(Exception):
                    await self._probe.close()
            self._probe = None
            text = str(exc).strip().splitlines()
            return text[0] if text else type(exc).__name__
