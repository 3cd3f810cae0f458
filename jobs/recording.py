"""Alerts this process is sending, until Telegram's message id for each is stored.

A reader can press an alert's button as soon as it shows, before the bot has Telegram's answer
to the send, so before the alert's message id is recorded; such a press waits for the record
rather than finding its alert unknown (issue 25).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

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


async def recorded(bot_data: MutableMapping[Any, Any], delivery_id: int, timeout: float) -> None:
    """Wait up to `timeout` for this process's send of the alert to be recorded; the send of
    another replica gives no signal here, so the whole timeout is waited for it."""
    event = _pending(bot_data).get(delivery_id)
    if event is None:
        await asyncio.sleep(timeout)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
