"""What the clock triggers; each job is a few lines that call the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram.ext import CallbackContext, JobQueue

from jobs import brief, deliver, digest, heartbeat, poll, retention, search, websub, weekly

Job = Callable[[CallbackContext[Any, Any, Any, Any]], Awaitable[None]]


class Exclusive:
    """Skips a tick while the previous one still runs, so slow polls never pile up."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.lock = asyncio.Lock()
        self.__name__ = job.__module__ or "job"

    async def __call__(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        if self.lock.locked():
            return
        async with self.lock:
            await self.job(context)


def schedule(job_queue: JobQueue[Any], *, tick_seconds: float = 1.0) -> None:
    """Each step looks for work every tick; the work itself lives in the database."""
    every = ((poll.run, "poll", tick_seconds), (brief.run, "brief", tick_seconds),
             (deliver.run, "deliver", tick_seconds), (digest.run, "digest", 20.0),
             (heartbeat.run, "heartbeat", heartbeat.INTERVAL_SECONDS),
             (search.run, "search", tick_seconds), (websub.run, "websub", tick_seconds),
             (weekly.run, "weekly", 20.0),
             (retention.run, "retention", retention.INTERVAL_SECONDS))
    # Jobs are scheduled before start-up finishes (migrations, getMe, the roles: seconds). A
    # trigger's first time that passed before the scheduler started was skipped, so the digest
    # and the heartbeat first ran a whole interval late (the container stayed unhealthy for a
    # minute). An explicit first run, with no grace limit, runs late rather than not at all.
    first = datetime.now(UTC) + timedelta(seconds=tick_seconds)
    for job, name, interval in every:
        job_queue.run_repeating(Exclusive(job), interval=interval, first=first, name=name,
                                job_kwargs={"max_instances": 2, "coalesce": True,
                                            "next_run_time": first, "misfire_grace_time": None})
