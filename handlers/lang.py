"""/lang: the language of briefs and of the bot's own words in this chat."""

from __future__ import annotations

from babel import Locale
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from handlers.common import (
    Context,
    answer_button,
    argument_text,
    chat_language,
    edit_message,
    language_code,
    refuse_unless_configurable,
    reply,
    services,
    text,
)
from news.text import excerpt
from storage import chats
from storage.db import db


def _native(code: str) -> str:
    """`de` -> `Deutsch`: a language is best recognized by its own name."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def keyboard(context: Context) -> InlineKeyboardMarkup:
    codes = services(context).catalog.languages
    buttons = [InlineKeyboardButton(_native(code), callback_data=f"lang:{code}") for code in codes]
    return InlineKeyboardMarkup([buttons[i:i + 4] for i in range(0, len(buttons), 4)])


async def _store(context: Context, chat_id: int, code: str) -> None:
    await db(services(context).engine, chats.set_language, chat_id=chat_id, language=code)


async def lang(update: Update, context: Context) -> None:
    current = await chat_language(update, context)
    raw = argument_text(update)
    if not raw:
        await reply(update, context, current, "lang.choose", current=current,
                    name=_native(current), markup=keyboard(context))
        return
    if await refuse_unless_configurable(update, context, current, "language"):
        return
    code = language_code(raw, services(context))
    if code is None or " " in raw:
        await reply(update, context, current, "lang.unknown", code=excerpt(raw))
        return
    chat = update.effective_chat
    assert chat is not None
    await _store(context, chat.id, code)
    await reply(update, context, code, "lang.done", code=code, name=_native(code))


async def press_language(update: Update, context: Context, code: str) -> None:
    current = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    if code not in services(context).catalog.languages:
        await answer_button(update, context, current, "button.stale")
        return
    await _store(context, chat.id, code)
    await answer_button(update, context, code, "lang.done", code=code, name=_native(code))
    message = update.effective_message
    if message is not None:
        await edit_message(message, text(context, code, "lang.done", code=code,
                                         name=_native(code)))
