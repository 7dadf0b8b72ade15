"""The coalescer behind the refresh grant: batches form only while every worker is busy."""

from __future__ import annotations

import asyncio

import pytest

from appkit.local.auth.batch import Coalescer


class Recorder:
    """``run`` that records each batch; the first ``hold`` batches wait for ``release``."""

    def __init__(self, hold: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_running = 0
        self.hold = hold
        self.release = asyncio.Event()

    async def __call__(self, keys: list[int]) -> list[int]:
        self.batches.append(keys)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if len(self.batches) <= self.hold:
                await self.release.wait()
            await asyncio.sleep(0)
            return [k * 10 for k in keys]
        finally:
            self.running -= 1


async def test_a_lone_call_runs_alone_and_at_once() -> None:
    run = Recorder()
    calls = Coalescer(run, workers=2, max_batch=8)
    assert await calls(3) == 30
    assert await calls(4) == 40
    assert run.batches == [[3], [4]]


async def test_calls_arriving_while_workers_are_busy_go_together() -> None:
    run = Recorder(hold=2)
    calls = Coalescer(run, workers=2, max_batch=64)
    first = []
    for k in (1, 2):
        first.append(asyncio.create_task(calls(k)))
        await asyncio.sleep(0.01)
    # both workers are now inside run, held
    rest = [asyncio.create_task(calls(k)) for k in range(3, 13)]
    await asyncio.sleep(0.01)
    assert run.batches == [[1], [2]]
    run.release.set()
    assert await asyncio.gather(*first, *rest) == [k * 10 for k in range(1, 13)]
    assert run.batches[2:] == [list(range(3, 13))]
    assert run.most_running <= 2


async def test_calls_beyond_the_workers_wait_and_go_together() -> None:
    run = Recorder()
    calls = Coalescer(run, workers=2, max_batch=8)
    assert await asyncio.gather(*(calls(k) for k in range(1, 6))) == [10, 20, 30, 40, 50]
    assert run.batches == [[1], [2], [3, 4, 5]]
    assert run.most_running == 2
    assert not calls._tasks and calls._busy == 0


async def test_batches_are_capped_at_max_batch() -> None:
    run = Recorder(hold=1)
    calls = Coalescer(run, workers=1, max_batch=4)
    first = asyncio.create_task(calls(0))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(calls(k)) for k in range(1, 11)]
    await asyncio.sleep(0.01)
    run.release.set()
    assert await asyncio.gather(first, *rest) == [k * 10 for k in range(11)]
    assert run.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert run.most_running == 1


async def test_an_error_reaches_every_call_of_its_batch_only() -> None:
    release = asyncio.Event()
    seen: list[list[int]] = []

    async def run(keys: list[int]) -> list[int]:
        seen.append(keys)
        if len(seen) == 1:
            await release.wait()
            return [0]
        if 13 in keys:
            raise LookupError("no 13")
        return keys

    calls = Coalescer(run, workers=1, max_batch=2)
    first = asyncio.create_task(calls(1))
    await asyncio.sleep(0.01)
    tasks = [asyncio.create_task(calls(k)) for k in (12, 13, 14)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert results[0] == 0
    assert isinstance(results[1], LookupError) and isinstance(results[2], LookupError)
    assert results[3] == 14
    assert seen == [[1], [12, 13], [14]]


async def test_a_run_answering_the_wrong_number_of_values_is_an_error() -> None:
    async def run(keys: list[int]) -> list[int]:
        return []

    with pytest.raises(RuntimeError, match="batch of 1 answered with 0 values"):
        await Coalescer(run, workers=1, max_batch=4)(1)


async def test_a_call_cancelled_while_waiting_is_not_run() -> None:
    run = Recorder(hold=1)
    calls = Coalescer(run, workers=1, max_batch=8)
    first = asyncio.create_task(calls(1))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(calls(2))
    kept = asyncio.create_task(calls(3))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0)
    run.release.set()
    assert await first == 10 and await kept == 30
    assert gone.cancelled()
    assert run.batches == [[1], [3]]


async def test_cancelling_a_lone_call_hands_the_waiting_calls_over() -> None:
    run = Recorder(hold=1)
    calls = Coalescer(run, workers=1, max_batch=8)
    lone = asyncio.create_task(calls(1))
    await asyncio.sleep(0.01)
    waiting = [asyncio.create_task(calls(k)) for k in (2, 3)]
    await asyncio.sleep(0.01)
    lone.cancel()
    assert await asyncio.gather(*waiting) == [20, 30]
    assert lone.cancelled()
    assert run.batches == [[1], [2, 3]]


async def test_cancelling_a_worker_cancels_its_calls_and_the_waiting_ones() -> None:
    run = Recorder(hold=2)
    calls = Coalescer(run, workers=1, max_batch=1)
    lone = asyncio.create_task(calls(1))
    await asyncio.sleep(0.01)
    handed = asyncio.create_task(calls(2))
    waiting = asyncio.create_task(calls(3))
    await asyncio.sleep(0.01)
    lone.cancel()  # the worker it hands over to runs [2] (held) with [3] still waiting
    await asyncio.sleep(0.01)
    assert run.batches == [[1], [2]]
    for task in list(calls._tasks):  # what shutdown does to a worker
        task.cancel()
    await asyncio.sleep(0.01)
    assert handed.cancelled() and waiting.cancelled()
    assert await calls(5) == 50  # and the coalescer still works afterwards


def test_needs_at_least_one_worker_and_a_positive_batch() -> None:
    async def run(keys: list[int]) -> list[int]:
        return keys

    with pytest.raises(ValueError):
        Coalescer(run, workers=0, max_batch=1)
    with pytest.raises(ValueError):
        Coalescer(run, workers=1, max_batch=0)
