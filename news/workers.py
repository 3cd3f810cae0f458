"""Claimed work for a fixed number of workers: a queue that claims refill before it runs dry.

Polling and delivery both claim rows from the database and handle each with I/O in between;
a gather per claimed batch would leave most workers idle while its slowest item finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


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
