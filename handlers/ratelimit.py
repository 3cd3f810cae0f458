"""A per-user command rate limit: one polite notice, then silence until it clears."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from telegram import Update
from telegram.ext import ApplicationHandlerStop, filters

from handlers.common import Context, answer_button, chat_language, is_admin, reply

# Commands in new messages and channel posts (the ones the command handlers answer), not edits.
COMMANDS = filters.COMMAND & (filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST)
NOTICE_EVERY = 60.0  # however a flood goes on, one sender hears about it at most once a minute
MAX_TRACKED = 10_000  # senders remembered before idle (full) buckets are forgotten


class Verdict(Enum):
    ADMIT = "admit"
    NOTICE = "notice"  # over the limit: say so, once
    SILENT = "silent"  # over the limit, already told


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    noticed_at: float | None = None
    limited: bool = False


class CommandLimiter:
    """A token bucket per sender: `per_minute` commands at once, refilled at `per_minute` a
    minute. Refused commands cost nothing, so a sender is answered again as soon as a token is
    back; the clock is a parameter so tests need not sleep."""

    def __init__(
        self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
        notice_every: float = NOTICE_EVERY, period: float = 60.0,
    ) -> None:
        # `period`: seconds to refill `per_minute` tokens (3600 for a per-hour limit, /ask's)
        self.capacity = float(per_minute)
        self.rate = per_minute / period
        self.clock = clock
        self.notice_every = notice_every
        self._buckets: dict[int, _Bucket] = {}

    def admit(self, sender: int) -> Verdict:
        now = self.clock()
        bucket = self._buckets.get(sender)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[sender] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.limited = False
            return Verdict.ADMIT
        if bucket.limited or (bucket.noticed_at is not None
                              and now - bucket.noticed_at < self.notice_every):
            bucket.limited = True
            return Verdict.SILENT
        bucket.limited, bucket.noticed_at = True, now
        return Verdict.NOTICE

    def _forget_idle(self, now: float) -> None:
        """Keep memory bounded: a sender whose bucket has refilled is the same as a new one."""
        if len(self._buckets) < MAX_TRACKED:
            return
        full = [sender for sender, bucket in self._buckets.items()
                if bucket.tokens + (now - bucket.stamp) * self.rate >= self.capacity
                and (bucket.noticed_at is None or now - bucket.noticed_at >= self.notice_every)]
        for sender in full:
            del self._buckets[sender]


def sender_of(update: Update) -> int | None:
    """Who is sending. A channel's posts and a group's anonymous admins write as the chat
    itself: its id, not the stand-in user they all share. A member writing "as" a channel of
    their own counts as the stand-in user Telegram reports for every such post (it never says
    who wrote it): owning several channels must not multiply one person's allowance."""
    message = update.effective_message
    chat = update.effective_chat
    if update.callback_query is None and message is not None and message.sender_chat:
        if chat is not None and message.sender_chat.id == chat.id:
            return chat.id
        if message.from_user is None:
            return message.sender_chat.id
    user = update.effective_user
    return user.id if user is not None else None


class RateLimit:
    """Counts commands and presses as they arrive (`arrive`, called by handlers.lanes), and,
    as the first handler group, stops those over the limit (bot admins exempt)."""

    def __init__(
        self, per_minute: int, *, exempt: frozenset[int] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = CommandLimiter(per_minute, clock=clock) if per_minute else None
        self.exempt = exempt  # ADMIN_IDS; admins added by /addadmin are exempted when handled
        self._verdicts: dict[int, Verdict] = {}  # by update id, from arrival until handled

    def arrive(self, update: object) -> Verdict:
        """Count an update now; its handler acts on this verdict later."""
        if not isinstance(update, Update):
            return Verdict.ADMIT
        verdict = self._judge(update)
        self._verdicts[update.update_id] = verdict
        return verdict

    def _judge(self, update: Update) -> Verdict:
        if self.limiter is None:
            return Verdict.ADMIT
        if update.callback_query is None and not COMMANDS.check_update(update):
            return Verdict.ADMIT  # only commands and button presses count
        sender = sender_of(update)
        if sender is None or sender in self.exempt:
            return Verdict.ADMIT
        return self.limiter.admit(sender)

    async def __call__(self, update: Update, context: Context) -> None:
        verdict = self._verdicts.pop(update.update_id, None)
        if verdict is None:  # not seen arriving (an update fed in by hand): count it now
            verdict = self._judge(update)
        if verdict is Verdict.ADMIT or await is_admin(update, context):
            return
        query = update.callback_query
        if verdict is Verdict.NOTICE:
            language = await chat_language(update, context)
            if query is not None:
                await answer_button(update, context, language, "ratelimit.notice")
            else:
                await reply(update, context, language, "ratelimit.notice")
        elif query is not None:
            await query.answer()  # silence, but the button's spinner stops
        raise ApplicationHandlerStop
