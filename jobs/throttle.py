"""Telegram's per-chat limits: about one message a second to a chat, 20 a minute to a group.

PTB's AIORateLimiter keeps the overall 30/s and the 20/min per group, but it waits inside the
request, after the lease was renewed; alerts wait here instead, before it (jobs.pacing).
"""

from __future__ import annotations

from collections import OrderedDict

from aiolimiter import AsyncLimiter

from jobs.pacing import PACING, Pacing


class PerChat:
    """One leaky bucket per chat, paced as `pacing` says; the least recently used are
    forgotten past `size`."""

    def __init__(self, pacing: Pacing = PACING, size: int = 10_000) -> None:
        self.pacing = pacing
        self.size = size
        self.buckets: OrderedDict[int, AsyncLimiter] = OrderedDict()

    def __call__(self, chat_id: int) -> AsyncLimiter:
        bucket = self.buckets.pop(chat_id, None) or AsyncLimiter(1, self.pacing.period(chat_id))
        self.buckets[chat_id] = bucket
        while len(self.buckets) > self.size:
            self.buckets.popitem(last=False)
        return bucket
