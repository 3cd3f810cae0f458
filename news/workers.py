"""Claimed work for a fixed number of workers: a queue that claims refill before it runs dry;
and calls that share one run when they arrive while another runs.

Polling and delivery both claim rows from the database and handle each with I/O in between;
a gather per claimed batch would leave most workers idle while its slowest item finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


async def drain(
    claim: Callable[[], Awaitable[Sequence[T]]],
    handle: Callable[[T], Awaitable[None]],
    *,
    workers: int,
    queued: int,
    name: Callable[[T], str],
    limit: int = 0,
) -> None:
    """Handle claimed items until a claim comes back empty, or, given the `limit` each claim
    takes at most, shorter than that: a claim of everything due by a fixed time (a poll
    pass's) that fell short took the last of it, and the empty claim after it would cost an
    idle tick one more thread hop. An item whose handling raises is logged and left to its
    claim's lease; the other workers go on.

    Workers start only when an item waits that no idle worker will take, up to `workers`:
    the jobs call this every tick, and most ticks claim nothing. Starting every worker each
    time (128 for polls, 32 for deliveries) was most of an idle bot's CPU."""
    queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=queued)
    tasks: list[asyncio.Task[None]] = []
    idle = 0  # workers waiting for an item, or started and not yet waiting

    async def worker() -> None:
        nonlocal idle
        while (item := await queue.get()) is not None:
            idle -= 1
            try:
                await handle(item)
            except Exception:
                log.exception("%s failed", name(item))
            idle += 1

    try:
        while items := await claim():
            for item in items:
                await queue.put(item)
                if queue.qsize() > idle and len(tasks) < workers:
                    idle += 1
                    tasks.append(asyncio.create_task(worker()))
            if len(items) < limit:
                break
    finally:
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)


class Batched(Generic[T, R]):
    """Calls that arrive while a run is under way wait for the next run, which takes them all
    (up to `limit`). One run has a fixed cost (a transaction and its commit); when calls come
    faster than runs finish, they share it instead of queueing one by one behind each other.

    `run` answers each item in order, a result or the exception that item alone raised; if the
    run itself raises, every caller of that run gets the exception. A caller cancelled before
    its run starts is left out of it; `close()` ends the runs, and no caller waits forever.

    `gather`: seconds a run waits before it takes its calls, so that calls arriving a few at a
    time (sends paced 30 a second) still share one; 0 takes what is there at once.
    """

    def __init__(
        self, run: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], limit: int,
        gather: float = 0.0,
    ) -> None:
        self.run = run
        self.limit = limit
        self.gather = gather
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.runner: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.pending.append((item, future))
        if self.runner is None or self.runner.done() or self.runner.get_loop() is not loop:
            self.runner = asyncio.create_task(self._runs())
        return await future

    async def close(self) -> None:
        """Cancel the run under way (its callers are cancelled) and wait for it to end."""
        if self.runner is not None and not self.runner.done():
            self.runner.cancel()
            await asyncio.gather(self.runner, return_exceptions=True)

    async def _runs(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self.pending:
                if self.gather > 0:
                    await asyncio.sleep(self.gather)
                taken, self.pending = self.pending[:self.limit], self.pending[self.limit:]
                batch = [(item, future) for item, future in taken if not future.done()]
                if batch:
                    self._answer(batch, await self._outcomes(batch))
        finally:  # cancelled, or worse: whoever still waits hears of it
            for _, future in batch + self.pending:
                future.cancel()
            self.pending = []

    async def _outcomes(self, batch: list[tuple[T, asyncio.Future[R]]]) -> list[R | Exception]:
        try:
            outcomes = list(await self.run([item for item, _ in batch]))
        except Exception as exc:
            return [exc] * len(batch)
        if len(outcomes) != len(batch):
            return [RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")] * len(batch)
        return outcomes

    @staticmethod
    def _answer(batch: list[tuple[T, asyncio.Future[R]]], outcomes: list[R | Exception]) -> None:
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller was cancelled during the run; the work is done
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
