"""Inline-button presses, routed by the prefix of their callback data."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram import Update

from handlers.common import Context, answer_button, chat_language, may_configure, refusal_key
from handlers.feedback import press_choice, press_choice_for, press_down, press_unmute, press_up
from handlers.lang import press_language
from handlers.packs import press_pack, press_packs
from handlers.semantic import press_threshold
from handlers.settings import press_mode
from handlers.topics import press_pin, press_suggestion, press_unsubscribe
from handlers.why import press_why
from news.types import whole_number

Press = Callable[[Update, Context, Any], Coroutine[Any, Any, None]]


def row_id(value: str) -> int:
    """A database id from callback data; anything else is forged or stale."""
    number = whole_number(value)
    if number is None:
        raise ValueError(value)
    return number


def row_ids(value: str) -> tuple[int, int]:
    """Two database ids, `12:34`."""
    first, _, second = value.partition(":")
    return row_id(first), row_id(second)


@dataclass(frozen=True)
class Route:
    """A button's handler, how its data is read, and whether the presser must be allowed to
    configure the chat (feedback votes and "Why?" are anyone's; setup is the admins')."""

    handler: Press
    convert: Callable[[str], Any]
    configure: bool = True
    subject: str = ""  # what a refused presser tried to change (refusal_key); "": its topics


ROUTES: dict[str, Route] = {
    "unsub": Route(press_unsubscribe, row_id),
    "sug": Route(press_suggestion, row_id),
    "lang": Route(press_language, str, subject="language"),
    "mode": Route(press_mode, str, subject="settings"),
    "up": Route(press_up, row_id, configure=False),
    "down": Route(press_down, row_id, configure=False),
    "why": Route(press_why, row_id, configure=False),
    "fb": Route(press_choice, row_id),  # changes a topic (or records it was not relevant)
    "fbt": Route(press_choice_for, row_ids),  # the topic a choice is for, when asked
    "unmute": Route(press_unmute, row_id),
    "pin": Route(press_pin, row_id),
    "sem": Route(press_threshold, row_ids),  # a semantic topic's threshold, tightened or loosened
    # Sources are the bot admins' to change: these check that themselves.
    "packs": Route(press_packs, str, configure=False),
    "pack": Route(press_pack, str, configure=False),
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
    language = await chat_language(update, context)
    try:
        argument = route.convert(value)
    except ValueError:
        await answer_button(update, context, language, "button.stale")
        return
    if route.configure and not await may_configure(update, context):
        await answer_button(update, context, language, refusal_key(update, route.subject))
        return
    await route.handler(update, context, argument)
