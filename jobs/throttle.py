"""Telegram's per-chat limits: about one message a second to a chat, 20 a minute to a group.

jobs.outbound keeps the overall 30/s and the 20/min per group, but it waits inside the
request, after the row left its claim's lease check; alerts wait here instead, before it
(jobs.pacing).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from types import TracebackType

from jobs.pacing import PACING, Pacing


class Spacing:
    """One chat's sends one at a time, each starting `period` after the previous one ended.

    Measured from the end, not from when the previous one was let through: a send let
    through may still wait inside the request (PTB's overall limiter, a slow network), and
    two sends a period apart on leaving here could then reach Telegram a moment apart.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self.turn = asyncio.Lock()
        self.ended = -math.inf

    async def __aenter__(self) -> None:
        await self.turn.acquire()
        try:
            wait = self.ended + self.period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        except BaseException:
            self.turn.release()
            raise

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self.ended = time.monotonic()
        self.turn.release()


class PerChat:
    """One Spacing per chat, paced as `pacing` says; the least recently used are forgotten
    past `size`."""

    def __init__(self, pacing: Pacing = PACING, size: int = 10_000) -> None:
        self.pacing = pacing
        self.size = size
        self.chats: OrderedDict[int, Spacing] = OrderedDict()

    def __call__(self, chat_id: int) -> Spacing:
        spacing = self.chats.pop(chat_id, None) or Spacing(self.pacing.period(chat_id))
        self.chats[chat_id] = spacing
        while len(self.chats) > self.size:
            self.chats.popitem(last=False)
        return spacing
