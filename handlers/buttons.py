"""Inline-button presses, routed by the prefix of their callback data."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update

from handlers.common import Context, answer_button, chat_language, may_configure, refusal_key
from handlers.lang import press_language
from handlers.settings import press_mode
from handlers.topics import press_pin, press_suggestion, press_unsubscribe

Press = Callable[[Update, Context, Any], Coroutine[Any, Any, None]]
MAX_ROW_ID = 2**63 - 1  # BIGINT: larger ids cannot name a row, and would overflow the driver


def row_id(value: str) -> int:
    """A database id from callback data; anything else is forged or stale."""
    number = int(value)
    if not 0 < number <= MAX_ROW_ID:
        raise ValueError(value)
    return number


ROUTES: dict[str, tuple[Press, Callable[[str], Any]]] = {
    "unsub": (press_unsubscribe, row_id),
    "sug": (press_suggestion, row_id),
    "lang": (press_language, str),
    "mode": (press_mode, str),
    "pin": (press_pin, row_id),
}


async def press(update: Update, context: Context) -> None:
    """Data we did not issue (forged, or from an older version) gets a short answer."""
    query = update.callback_query
    if query is None:
        return
    prefix, _, value = (query.data or "").partition(":")
    route = ROUTES.get(prefix)
    if route is None or not value:
        await answer_button(update, context, await chat_language(update, context), "button.stale")
        return
    handler, convert = route
    language = await chat_language(update, context)
    try:
        argument = convert(value)
    except ValueError:
        await answer_button(update, context, language, "button.stale")
        return
    if not await may_configure(update, context):  # every button changes the chat's setup
        await answer_button(update, context, language, refusal_key(update))
        return
    await handler(update, context, argument)
