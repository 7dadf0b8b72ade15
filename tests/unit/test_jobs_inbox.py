"""appkit.jobs.inbox: claimed jobs reach the consumers, one wake-up at a time, none stranded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from appkit.jobs.handler import Handler, JobContext
from appkit.jobs.inbox import Claimed, Inbox


def _handler() -> Handler:
    return Handler(queue="q", fn=lambda p: None, model=None, max_attempts=None, backoff=1.0, max_backoff=60.0,
                   is_async=False, wants_context=False)


def _jobs(n: int, start: int = 1) -> list[Claimed]:
    h = _handler()
    return [Claimed(JobContext(id=i, queue="q", attempt=1, max_attempts=5, priority=0,
                               created_at=datetime.now(UTC), worker_id="w"), h, {}) for i in range(start, start + n)]


async def _consumers(inbox: Inbox, n: int, *, sleep: float | None) -> tuple[list[asyncio.Task[None]],
                                                                           dict[int, list[int]], list[int]]:
    ran: dict[int, list[int]] = {i: [] for i in range(n)}
    busy = [0, 0]  # now, most at once

    async def consume(me: int) -> None:
        while True:
            job = await inbox.get()
            ran[me].append(job.ctx.id)
            if sleep is not None:
                busy[0] += 1
                busy[1] = max(busy[1], busy[0])
                await asyncio.sleep(sleep)
                busy[0] -= 1

    tasks = [asyncio.create_task(consume(i)) for i in range(n)]
    await asyncio.sleep(0)  # every consumer waits
    return tasks, ran, busy


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_handlers_that_never_wait_run_back_to_back_on_one_consumer() -> None:
    async def main() -> None:
        inbox = Inbox()
        tasks, ran, _ = await _consumers(inbox, 10, sleep=None)
        inbox.put_many(_jobs(100))
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(inbox) == 0
        assert sorted(j for js in ran.values() for j in js) == list(range(1, 101))
        assert max(len(js) for js in ran.values()) == 100, {k: len(v) for k, v in ran.items()}  # one did them all
        await _stop(tasks)

    asyncio.run(main())


def test_handlers_that_wait_bring_in_every_consumer() -> None:
    async def main() -> None:
        inbox = Inbox()
        tasks, ran, busy = await _consumers(inbox, 8, sleep=0.05)
        inbox.put_many(_jobs(40))
        await asyncio.sleep(0.6)
        assert len(inbox) == 0
        assert sorted(j for js in ran.values() for j in js) == list(range(1, 41))
        assert busy[1] == 8, busy  # all consumers ran at once
        assert all(len(js) == 5 for js in ran.values()), ran
        await _stop(tasks)

    asyncio.run(main())


def test_a_woken_consumer_cancelled_passes_the_wake_up_on() -> None:
    async def main() -> None:
        inbox = Inbox()
        tasks, ran, _ = await _consumers(inbox, 3, sleep=None)
        inbox.put_many(_jobs(2))
        tasks[0].cancel()  # the consumer put_many woke: cancelled before it ran
        await asyncio.sleep(0.01)
        assert len(inbox) == 0, "jobs stranded in the inbox"
        assert sorted(ran[1] + ran[2]) == [1, 2]
        inbox.put_many(_jobs(3, start=3))  # and later jobs still reach a consumer
        await asyncio.sleep(0.01)
        assert sorted(ran[1] + ran[2]) == [1, 2, 3, 4, 5]
        await _stop(tasks)

    asyncio.run(main())
