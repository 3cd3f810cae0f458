"""Alerts this process is sending, until Telegram's message id for each is stored.

A reader can press an alert's button as soon as it shows, before the bot has Telegram's answer
to the send, so before the alert's message id is recorded; such a press waits for the record
rather than finding its alert unknown (issue 25); so does /why sent as a reply to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, MutableMapping
from typing import Any, TypeVar

T = TypeVar("T")
KEY = "alerts_being_recorded"  # bot_data: delivery id -> set once its send is recorded


def _pending(bot_data: MutableMapping[Any, Any]) -> dict[int, asyncio.Event]:
    pending: dict[int, asyncio.Event] = bot_data.setdefault(KEY, {})
    return pending


@contextlib.asynccontextmanager
async def recording(bot_data: MutableMapping[Any, Any], delivery_id: int) -> AsyncIterator[None]:
    """Around a send and the storing of its outcome: presses for it wait until it is done."""
    event = _pending(bot_data).setdefault(delivery_id, asyncio.Event())
    try:
        yield
    finally:
        _pending(bot_data).pop(delivery_id, None)
        event.set()


async def recorded(bot_data: MutableMapping[Any, Any], delivery_ids: Collection[int],
                   timeout: float) -> None:
    """Wait up to `timeout` for this process's send of one of the alerts to be recorded; the
    sends of another replica give no signal here, so the whole timeout is waited for them."""
    events = [event for delivery_id in delivery_ids
              if (event := _pending(bot_data).get(delivery_id)) is not None]
    if not events:
        await asyncio.sleep(timeout)
        return
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def until_recorded(
    bot_data: MutableMapping[Any, Any], look: Callable[[], Awaitable[tuple[T, Collection[int]]]],
    *, wait: float, poll: float,
) -> T:
    """`look()` answers with what is wanted and the alerts still being sent it may turn out to
    need: it is asked again as soon as one of them is recorded (a send of this process) or
    every `poll` seconds (another replica's), for `wait` seconds at most; its last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        found, sending = await look()
        left = deadline - loop.time()
        if not sending or left <= 0:
            return found
        await recorded(bot_data, sending, min(left, poll))
