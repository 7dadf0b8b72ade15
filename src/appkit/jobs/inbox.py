"""The hand-off of claimed jobs from the worker's pump to its consumer tasks."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appkit.jobs.handler import Handler, JobContext


@dataclass(slots=True)
class Claimed:
    """A job this worker holds: waiting in the inbox (``task`` None) or run by the consumer ``task``."""

    ctx: JobContext
    handler: Handler
    payload: Any
    task: asyncio.Task[None] | None = None


class Inbox:
    """A FIFO of claimed jobs shared by the consumers, waking them one at a time.

    ``put_many`` wakes one idle consumer; a consumer that takes a job while more are waiting
    wakes the next one unless a wake-up is already on its way. Handlers that never suspend are
    then run back to back by one consumer (no wake-up per job), and handlers that do suspend
    bring in one more consumer per event-loop turn, up to all of them.
    """

    def __init__(self) -> None:
        self._jobs: deque[Claimed] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def put_many(self, jobs: Iterable[Claimed]) -> None:
        self._jobs.extend(jobs)
        if self._jobs and not self._waking:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
                return

    async def get(self) -> Claimed:
        while not self._jobs:
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken, then cancelled: pass the wake-up on
                    self._waking -= 1
                    if self._jobs and not self._waking:
                        self._wake_one()
                raise
            self._waking -= 1
        job = self._jobs.popleft()
        if self._jobs and not self._waking:
            self._wake_one()
        return job
