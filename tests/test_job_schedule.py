"""The clock's jobs (jobs.schedule) under a slow start-up: a first tick that comes late runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram.ext import ApplicationBuilder, CallbackContext

import jobs
from jobs import brief, deliver, digest, heartbeat, poll

TOKEN = "123456:TEST-token-for-the-job-queue"
MODULES = (poll, brief, deliver, digest, heartbeat)


@pytest.mark.asyncio
async def test_every_job_runs_its_first_tick_even_after_a_slow_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bot.py schedules the jobs, then migrates, calls getMe and takes its roles: seconds.
    APScheduler skips a run later than its grace (1 s by default), and a skipped first
    heartbeat left the container unhealthy for a whole interval."""
    ran: dict[str, asyncio.Event] = {module.__name__: asyncio.Event() for module in MODULES}

    def fake(name: str) -> Any:
        async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
            ran[name].set()
        return run

    for module in MODULES:
        monkeypatch.setattr(module, "run", fake(module.__name__))
    application = ApplicationBuilder().token(TOKEN).build()
    assert application.job_queue is not None
    jobs.schedule(application.job_queue, tick_seconds=0.1)
    await asyncio.sleep(1.5)  # the start-up: past the first tick by more than the default grace
    await application.job_queue.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ran.values())),
                               timeout=10)  # the heartbeat's interval is 30 s, the digest's 20
    finally:
        await application.job_queue.stop(wait=False)
    assert all(event.is_set() for event in ran.values())
