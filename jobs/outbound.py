"""One limiter for everything the bot sends: command replies first, alerts in the slots left.

Telegram allows about 30 messages a second overall. PTB's AIORateLimiter paced everything in
one queue, first come first served, so alerts were held at 28/s to leave room for replies; a
fan-out then took 1.07× its minimum. Here replies and alerts share one bucket, a reply always
taking the next slot before any waiting alert, so a fan-out uses every slot replies leave.

Only where another replica may answer commands (replies this process cannot see) are alerts
kept below the whole rate (`reserve`). Alerts sent with `allow_paid_broadcast` (issue 24) go
by a bucket of their own at up to 1,000 a second: Telegram counts them apart from the free 30.
Groups keep their 20 a minute (aiolimiter, as AIORateLimiter did).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter, ExtBot

from jobs.pacing import PACING, PAID_PACING
from telegram_http import WRITE
from telegram_link import DEFAULTS, retry_seconds

JSONDict = dict[str, Any]
Result = bool | JSONDict | list[JSONDict]

FREE_PER_SECOND = 29.0  # of Telegram's 30: a margin for requests bunched on the way
# Alerts go in pairs where two wait: one wake-up of the pace for two sends, and their answers
# come back together. At 30 a second the bot is otherwise idle between sends, and on a virtual
# machine each wake-up from idle costs more CPU than the send it makes (bench/fanout.py: 0.3 ms
# an alert less than one at a time).
ALERT_BATCH = 2
# A wake-up late by a few milliseconds (a busy event loop) is made up by the next pair rather
# than lost; any second still sees at most 2.25 + 29 × (1 - 0.05) ≈ 29 sends, so a request
# held up to a slot's length (34 ms) on its way still leaves it at 30. At 29.5 a second,
# with one spare slot less, fan-outs over the faster transport (telegram_http) met a few 429s.
FREE_BURST = ALERT_BATCH + 0.25
RESERVED_PER_SECOND = 28.0  # alerts' share where another replica answers commands
PAID_PER_SECOND = 970.0  # of the 1,000 allow_paid_broadcast allows: a margin like the free 29 of 30
REPLY_TRIES = 3  # a throttled reply goes again at most twice,
REPLY_WAIT = 10.0  # and only when Telegram asks it to wait no longer than this (seconds)
PAID_BURST = 20  # paid sends let through at once: fewer wake-ups, still under 1,000 in any 1 s


LINK_PREVIEWS = DEFAULTS.link_preview_options.to_dict() if DEFAULTS.link_preview_options else None


def alert(bot: object) -> JSONDict | None:
    """rate_limit_args of an alert that already took its turn (`turn`), for a bot paced here;
    another limiter (PTB's own takes a retry count) gets none."""
    return {"alert": True, "paced": True} if _outbound(bot) is not None else None


def _outbound(bot: object) -> Outbound | None:
    limiter = getattr(bot, "rate_limiter", None)
    return limiter if isinstance(limiter, Outbound) else None


async def turn(bot: object, *, paid: bool) -> None:
    """Wait for an alert's slot in the overall rate, before its lease is checked: a sender
    that waited here, however long (the paid rate refused, a starved CPU), then checks a
    lease that still covers the request itself (jobs.pacing's `send_time`)."""
    limiter = _outbound(bot)
    if limiter is not None:
        await limiter.take_alert(paid=paid)


async def send_alert(
    bot: ExtBot[Any], chat_id: int, html: str, *, thread_id: int | None,
    buttons: Sequence[Sequence[tuple[str, str]]], paid: bool,
) -> int:
    """sendMessage for an alert, paced as one, answering the new message's id. The answer is
    not made into PTB's Message: with an alert's entities that is hundreds of objects, a
    fifth of an alert's CPU, for one number. Nor is the keyboard built of PTB's objects only
    to be turned back into the Bot API's JSON: `buttons` are rows of (label, callback data).
    Errors are PTB's own, as from send_message."""
    keyboard = [[{"text": label, "callback_data": data} for label, data in row]
                for row in buttons]
    data: JSONDict = {
        "chat_id": chat_id, "text": html, "message_thread_id": thread_id,
        "parse_mode": DEFAULTS.parse_mode, "link_preview_options": LINK_PREVIEWS,
        "reply_markup": {"inline_keyboard": keyboard}, "allow_paid_broadcast": paid or None,
    }
    result = await bot._post("sendMessage", data, read_timeout=_read_timeout(paid),
                             api_kwargs=bot._merge_api_rl_kwargs(None, alert(bot)))
    return message_id(result)


def _read_timeout(paid: bool) -> float:
    """As long as the pace's `send_time` allows: a send that timed out may still have gone
    out, and is retried, so an answer late under load (a paid fan-out keeps 240 requests in
    flight) is better waited for than taken for a failure: that made duplicates."""
    return (PAID_PACING if paid else PACING).send_time - WRITE


class UnreadableAnswer(Exception):
    """Telegram (or a proxy before it) answered a send with something that is not a Message:
    the message may have gone out, so it counts as a failed attempt, with this as its reason."""


def message_id(result: object) -> int:
    message_id = result.get("message_id") if isinstance(result, dict) else None
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise UnreadableAnswer(f"sendMessage answered {type(result).__name__} without a message id")
    return message_id


class Bucket:
    """Token bucket: `rate` a second, at most `burst` at once, waiters served by priority
    (0 first), each priority first come first served. A priority with a batch (`batches`)
    waits for tokens enough to let that many of its waiters through at once."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep) -> None:
        self.rate, self.burst = rate, burst
        self.clock, self.sleep = clock, sleep
        self.tokens, self.stamp = float(burst), -math.inf
        self.waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())
        self.runner: asyncio.Task[None] | None = None
        self.gates: dict[int, Callable[[], float]] = {}  # priority -> seconds until it may go
        self.batches: dict[int, Callable[[], int]] = {}  # priority -> how many go together
        self.released: dict[int, float] = {}  # priority -> when the last of it was let through

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, priority: int = 0) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.waiting[priority].append(future)
        if self.runner is None or self.runner.done() or self.runner.get_loop() is not loop:
            self.runner = loop.create_task(self._serve())
        await future

    def _next(self) -> tuple[int, float]:
        """The priority to serve next (-1: none waits) and how long its gate holds it."""
        for priority, queue in enumerate(self.waiting):
            while queue and queue[0].done():  # cancelled while waiting
                queue.popleft()
            if queue:
                gate = self.gates.get(priority)
                return priority, gate() if gate is not None else 0.0
        return -1, 0.0

    async def _serve(self) -> None:
        while True:
            priority, gated = self._next()
            if priority < 0:
                return
            self._refill()
            batch = self._batch(priority)
            wait = max(gated, (batch - self.tokens) / self.rate if self.tokens < batch else 0.0)
            if wait > 0:
                await self.sleep(wait)
                continue  # a reply may have arrived meanwhile: it goes first
            queue = self.waiting[priority]
            for _ in range(batch):
                while queue and queue[0].done():  # cancelled while waiting
                    queue.popleft()
                if not queue:
                    break
                self.tokens -= 1.0
                queue.popleft().set_result(None)
            self.released[priority] = self.clock()

    def _batch(self, priority: int) -> int:
        """How many of this priority's waiters go at the next wake-up: its batch, or as many
        as wait (never more than the bucket holds)."""
        batch = self.batches.get(priority)
        wanted = min(batch() if batch is not None else 1, int(self.burst))
        waiting = 0
        for future in self.waiting[priority]:
            waiting += not future.done()
            if waiting >= wanted:
                break
        return max(1, waiting)


class Outbound(BaseRateLimiter[JSONDict]):
    """PTB's rate limiter for this bot: see the module's docstring.

    `alone()` says whether this process answers every command itself (SQLite's one process,
    or the replica holding the receiver role); when it does not, alerts keep to `reserved`.
    """

    def __init__(self, alone: Callable[[], bool] = lambda: True, *,
                 per_second: float = FREE_PER_SECOND, reserved: float = RESERVED_PER_SECOND,
                 paid_per_second: float = PAID_PER_SECOND,
                 group_period: float = PACING.group_period) -> None:
        self.alone = alone
        self.free = Bucket(per_second, FREE_BURST)
        self.paid = Bucket(paid_per_second, PAID_BURST)
        self.reserved = reserved
        self.free.gates[1] = self._alert_gate
        self.free.batches[1] = lambda: ALERT_BATCH if self.alone() else 1
        self.group_period = group_period
        self.groups: dict[int | str, AsyncLimiter] = {}

    async def take_alert(self, *, paid: bool) -> None:
        """An alert's slot: the paid bucket's, or a free one left by replies."""
        if paid:
            await self.paid.take()
        else:
            await self.free.take(1)

    def _alert_gate(self) -> float:
        """Seconds until an alert may take a free slot: none while alone, else its share."""
        if self.alone():
            return 0.0
        last = self.free.released.get(1, -math.inf)
        return max(0.0, last + 1.0 / self.reserved - self.free.clock())

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def _group(self, chat_id: int | str) -> AsyncLimiter:
        if len(self.groups) > 10_000:  # forget idle groups, as AIORateLimiter does
            self.groups = {key: limiter for key, limiter in self.groups.items()
                           if not limiter.has_capacity(1)}
        return self.groups.setdefault(chat_id, AsyncLimiter(1, self.group_period))

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: JSONDict | None,
    ) -> Result:
        chat_id = data.get("chat_id")
        with contextlib.suppress(ValueError, TypeError):
            chat_id = int(chat_id)  # type: ignore[arg-type]
        if chat_id is None:  # getUpdates, getMe, setMyCommands...: not a message
            return await callback(*args, **kwargs)
        args_ = rate_limit_args or {}
        group = (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str)
        async with self._group(chat_id) if group else contextlib.nullcontext():
            if args_.get("paced"):
                pass  # took its turn already (`turn`)
            elif args_.get("alert"):
                await self.take_alert(paid=bool(data.get("allow_paid_broadcast")))
            elif data.get("allow_paid_broadcast"):
                await self.paid.take()
            else:
                await self.free.take(0)
            if args_.get("alert") or args_.get("paced"):
                return await callback(*args, **kwargs)  # jobs.deliver retries its own rows
            return await self._reply(callback, args, kwargs)

    async def _reply(
        self, callback: Callable[..., Coroutine[Any, Any, Result]], args: Any,
        kwargs: dict[str, Any],
    ) -> Result:
        """A reply Telegram throttled waits its turn and goes again, a few times at most: a
        reader who answers an alert at once (/why) is answered inside the chat's one message
        a second, which the alert has just used, and the reply would otherwise be lost."""
        tries = 1
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                wait = retry_seconds(error)
                if tries >= REPLY_TRIES or wait > REPLY_WAIT:
                    raise
            tries += 1
            await asyncio.sleep(wait)
            await self.free.take(0)
