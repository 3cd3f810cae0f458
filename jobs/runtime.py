"""Helpers every job shares."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from storage.db import in_thread
from storage.locks import Role

T = TypeVar("T")


async def until_stopped(work: Coroutine[Any, Any, T], stopping: asyncio.Event) -> T | None:
    """Run `work`, but cancel it when the bot is stopping (its transactions roll back)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stopping.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def holds(role: Role) -> bool:
    """role.held() off the event loop. The jobs ask every tick; on SQLite, where the answer
    is always yes, the thread hop was a third of an idle delivery tick's CPU."""
    return role.local or await in_thread(role.held)
