"""Telegram's per-chat limit (about one message a second to the same chat).

PTB's AIORateLimiter keeps the overall 30/s and the 20/min per group; it has no per-chat rule
for private chats, which this adds for alerts.
"""

from __future__ import annotations

from collections import OrderedDict

from aiolimiter import AsyncLimiter

PER_CHAT_PER_SECOND = 1.0


class PerChat:
    """One leaky bucket per chat; the least recently used are forgotten past `size`."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self.buckets: OrderedDict[int, AsyncLimiter] = OrderedDict()

    def __call__(self, chat_id: int) -> AsyncLimiter:
        bucket = self.buckets.pop(chat_id, None) or AsyncLimiter(1, 1 / PER_CHAT_PER_SECOND)
        self.buckets[chat_id] = bucket
        while len(self.buckets) > self.size:
            self.buckets.popitem(last=False)
        return bucket
