"""Coalescing of concurrent calls into batches (the refresh grant's hot path)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """Runs ``run(keys) -> values`` for calls that arrive together.

    At most ``workers`` runs at once. A call that finds a worker free runs alone, at once, in
    its caller's task; calls that find every worker busy wait, and the next worker to finish
    starts a run for all of them (up to ``max_batch`` keys per run; the run continues with
    the next batch while calls wait). So under light load nothing waits and nothing is
    handed over; under heavy load the cost of a run (one statement's start-up, one round
    trip) is shared by its batch.

    ``run`` returns one value per key, in order; an exception it raises reaches every call
    of that batch.
    """

    def __init__(self, run: Callable[[list[K]], Awaitable[list[V]]], *, workers: int, max_batch: int) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError("workers and max_batch must be >= 1")
        self._run = run
        self.workers = workers
        self.max_batch = max_batch
        # invariant: calls wait only while every worker is busy (a worker that finishes
        # hands them over at once, see _hand_over)
        self._waiting: deque[tuple[K, asyncio.Future[V]]] = deque()
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, key: K) -> V:
        if self._busy >= self.workers:
            future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
            self._waiting.append((key, future))
            return await future
        self._busy += 1
        try:
            return (await self._run_checked([key]))[0]
        finally:
            self._busy -= 1
            self._hand_over()

    def _take(self) -> list[tuple[K, asyncio.Future[V]]]:
        """The next batch: up to ``max_batch`` waiting calls, oldest first."""
        batch: list[tuple[K, asyncio.Future[V]]] = []
        while self._waiting and len(batch) < self.max_batch:
            key, future = self._waiting.popleft()
            if not future.done():  # a caller cancelled while waiting: its key is not run
                batch.append((key, future))
        return batch

    async def _run_checked(self, keys: list[K]) -> list[V]:
        values = await self._run(keys)
        if len(values) != len(keys):
            raise RuntimeError(f"batch of {len(keys)} answered with {len(values)} values")
        return values

    def _hand_over(self) -> None:
        """Start a run for the waiting calls when a worker is free."""
        if self._waiting and self._busy < self.workers:
            self._busy += 1
            task = asyncio.create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                if not batch:
                    continue
                try:
                    values = await self._run_checked([key for key, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:
                    for _, future in batch:
                        future.cancel()
                    raise
                for (_, future), value in zip(batch, values, strict=True):
                    if not future.done():
                        future.set_result(value)
        finally:
            self._busy -= 1
            if self._busy == 0:
                # cancelled with calls still waiting (shutdown): they must not wait forever
                while self._waiting:
                    self._waiting.popleft()[1].cancel()
            else:
                self._hand_over()
