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
) -> None:
    """Handle claimed items until a claim comes back empty. An item whose handling raises is
    logged and left to its claim's lease; the other workers go on."""
    queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=queued)

    async def worker() -> None:
        while (item := await queue.get()) is not None:
            try:
                await handle(item)
            except Exception:
                log.exception("%s failed", name(item))

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    try:
        while items := await claim():
            for item in items:
                await queue.put(item)
    finally:
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)


class Batched(Generic[T, R]):
    """Calls that arrive while a run is under way wait for the next run, which takes them all
    (up to `limit`). One run has a fixed cost (a transaction and its commit); when calls come
    faster than runs finish, they share it instead of queueing one by one behind each other.

    `run` answers each item in order, a result or the exception that item alone raised; if the
    run itself raises, every caller of that run gets the exception.
    """

    def __init__(
        self, run: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], limit: int
    ) -> None:
        self.run = run
        self.limit = limit
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.runner: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._runs())
        return await future

    async def _runs(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:self.limit], self.pending[self.limit:]
            try:
                outcomes = await self.run([item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch + self.pending:
                    future.cancel()
                raise
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its caller was cancelled; the work is done all the same
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
