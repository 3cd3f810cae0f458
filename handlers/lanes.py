"""Updates of different chats side by side, each chat's one at a time in the order they came.

Handled one by one, a group's replies (one per 3 s, Telegram's 20 a minute) kept every other
chat waiting; handled all at once, a chat's commands could overtake each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from handlers.ratelimit import RateLimit, Verdict

# Updates handled at once over all chats: waiting for a chat's turn holds a place, and what
# one sender can queue is bounded by the rate limit, so this is many senders' worth.
MAX_CONCURRENT = 512


@dataclass
class _Lane:
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class ChatLanes(BaseUpdateProcessor):
    """One lane per chat. The rate limit counts each update here, as it arrives: counted when
    handled, a flooder's queue would refill their allowance as fast as it drained."""

    def __init__(self, limit: RateLimit, max_concurrent: int = MAX_CONCURRENT) -> None:
        super().__init__(max_concurrent)
        self.limit = limit
        self._lanes: dict[int, _Lane] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        verdict = self.limit.arrive(update)
        key = lane_of(update)
        if key is None or verdict is not Verdict.ADMIT:
            # Refused updates (a notice at most) do not wait behind the flood they belong to.
            await coroutine
            return
        lane = self._lanes.setdefault(key, _Lane())
        lane.users += 1
        try:
            async with lane.turn:  # asyncio's locks are first come, first served
                await coroutine
        finally:
            lane.users -= 1
            if not lane.users:
                del self._lanes[key]

    async def initialize(self) -> None:
        """Nothing to set up: lanes come and go with their updates."""

    async def shutdown(self) -> None:
        """Nothing to free: the application waits for the updates in flight."""


def lane_of(update: object) -> int | None:
    """The chat an update belongs to; None for the few that have none (inline queries)."""
    if isinstance(update, Update) and update.effective_chat is not None:
        return update.effective_chat.id
    return None
