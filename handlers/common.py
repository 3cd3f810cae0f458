"""What every command handler does first: find its services, its chat, its language."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Awaitable
from typing import TypeVar

from babel import Locale, UnknownLocaleError
from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from locales import Safe
from news.text import clip
from services import KEY, Services
from storage import admins, chats
from storage.db import db

Context = ContextTypes.DEFAULT_TYPE
log = logging.getLogger("tidings")
T = TypeVar("T")


def services(context: Context) -> Services:
    service: Services = context.bot_data[KEY]
    return service


def language_code(code: str | None, svc: Services) -> str | None:
    """A Telegram or /lang code as we store it (`zh-hans` -> `zh`), or None if no language."""
    if not code:
        return None
    code = code.strip().lower().replace("_", "-")
    if code in svc.catalog.languages:
        return code
    try:
        return str(Locale.parse(code.split("-")[0]))
    except (UnknownLocaleError, ValueError):
        return None


async def chat_language(update: Update, context: Context) -> str:
    """The chat's language, creating the chat on first contact from the user's language_code
    (every update asks: it runs off the event loop)."""
    svc = services(context)
    chat = update.effective_chat
    assert chat is not None
    user = update.effective_user
    first = language_code(user.language_code if user else None, svc) or svc.default_language
    row = await db(svc.engine, chats.ensure_chat, chat_id=chat.id, chat_type=chat.type,
                   title=chat.title or chat.username, language=first)
    return row.language


def text(
    context: Context, language: str, key: str, *, plural: int | None = None, **values: object
) -> str:
    """The message for `key`; with `plural`, the plural form for that count, as `{count}`."""
    catalog = services(context).catalog
    if plural is not None:
        return catalog.ngettext(language, key, plural, **values)
    return catalog.text(language, key, **values)


async def reply(
    update: Update,
    context: Context,
    language: str,
    key: str,
    *,
    markup: InlineKeyboardMarkup | None = None,
    plural: int | None = None,
    **values: object,
) -> Message:
    """Answer in the chat's language, as HTML (the catalogue's values are escaped)."""
    message = update.effective_message
    assert message is not None
    return await message.reply_text(text(context, language, key, plural=plural, **values),
                                    reply_markup=markup)


NOTE_LIMIT = 200  # what Telegram shows after a press, counted in UTF-16 code units


def button_note(said: str, limit: int = NOTE_LIMIT) -> str:
    """Catalogue HTML as the plain text of a press's answer, cut to Telegram's limit."""
    note = html.unescape(re.sub(r"<[^>]+>", "", said))
    cut = min(len(note), limit)
    while len(clip(note, cut).encode("utf-16-le")) > 2 * limit:
        cut -= 1
    return clip(note, cut)


async def answer_button(
    update: Update, context: Context, language: str, key: str, **values: object
) -> None:
    """The short note Telegram shows over the chat after a button press (plain text)."""
    query = update.callback_query
    if query is not None:
        await query.answer(button_note(services(context).catalog.text(language, key, **values)))


async def answer_privately(update: Update, said: str) -> None:
    """`said` (HTML) in a box only the presser sees: in a channel or group a reply would be a
    post for everyone, made by anyone who may press."""
    query = update.callback_query
    if query is not None:
        await query.answer(button_note(said), show_alert=True)


async def edit_message(
    message: Message, html: str | None = None, *, markup: InlineKeyboardMarkup | None = None
) -> bool:
    """Show `html` (with `markup` under it), or only a new keyboard when `html` is None.

    A button pressed twice asks for the message it already shows: Telegram refuses such an
    edit ("message is not modified"), and it is done. False: the message is gone or can no
    longer be edited, and the caller may say it anew."""
    try:
        if html is None:
            await message.edit_reply_markup(markup)
        else:
            await message.edit_text(html, reply_markup=markup)
    except BadRequest as error:
        reason = str(error).lower()
        if "not modified" in reason:
            return True
        if "not found" in reason or "can't be edited" in reason:
            log.info("message %s in chat %s not edited: %s", message.message_id,
                     message.chat_id, error)
            return False
        raise
    return True


async def is_admin(update: Update, context: Context) -> bool:
    """A bot admin: one of ADMIN_IDS, or added by /addadmin."""
    svc = services(context)
    user = update.effective_user
    if user is None:
        return False
    if user.id in svc.admin_ids:
        return True
    return await db(svc.engine, admins.is_admin, user_id=user.id, permanent=svc.admin_ids)


def argument_text(update: Update) -> str:
    """Everything after the command, with its original spacing and quotes intact."""
    message = update.effective_message
    raw = (message.text or "") if message else ""
    parts = raw.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def thread_of(update: Update) -> int:
    """The forum topic a message was sent in (0 outside forum topics)."""
    message = update.effective_message
    if message is not None and message.is_topic_message and message.message_thread_id:
        return message.message_thread_id
    return 0


async def may_configure(update: Update, context: Context) -> bool:
    """Private chats configure themselves; elsewhere only the chat's admins may (SPEC §1, §8).

    A channel is configured only by posts in it (only its admins can post), never by a
    viewer's button press; a group's anonymous admin writes as the group itself.
    """
    chat, user = update.effective_chat, update.effective_user
    if chat is None:
        return False
    if chat.type == "private":
        return True
    if update.callback_query is None:
        if chat.type == "channel":
            return update.channel_post is not None or update.edited_channel_post is not None
        message = update.effective_message
        sender = message.sender_chat if message is not None else None
        if sender is not None and sender.id == chat.id:
            return True
    if user is None:
        return False
    if await is_admin(update, context):
        return True
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError:  # no answer about the presser is no permission
        return False
    return member.status in ("creator", "administrator")


def refusal_key(update: Update, subject: str = "") -> str:
    """Channels and groups are refused in their own words; a group's member is told what
    they tried to change (`language`, `settings`; what it follows when no subject)."""
    chat = update.effective_chat
    if chat is not None and chat.type == "channel":
        return "channel.refused"
    return f"group.refused.{subject}" if subject else "group.refused"


async def refuse_unless_configurable(
    update: Update, context: Context, language: str, subject: str = ""
) -> bool:
    """True (after a polite refusal) when this user may not change this chat's setup."""
    if await may_configure(update, context):
        return False
    await reply(update, context, language, refusal_key(update, subject))
    return True


async def reply_chunks(
    update: Update, context: Context, language: str, key: str, lines: list[str],
    separator: str = "\n\n", markup: InlineKeyboardMarkup | None = None,
) -> None:
    """A long list as several messages, whole entries each, every one under Telegram's 4096;
    `markup` goes under the last."""
    parts = chunks(context, language, key, lines, separator)
    for part in parts[:-1]:
        await reply_html(update, part)
    await reply_html(update, parts[-1], markup)


def keyboard_without(message: Message, data: str) -> InlineKeyboardMarkup | None:
    """The message's keyboard less the button pressed (None when none is left)."""
    keyboard = message.reply_markup.inline_keyboard if message.reply_markup else ()
    rows = [kept for row in keyboard
            if (kept := [button for button in row if button.callback_data != data])]
    return InlineKeyboardMarkup(rows) if rows else None


def chunks(context: Context, language: str, key: str, lines: list[str],
           separator: str = "\n\n") -> list[str]:
    """The messages a long list takes (reply_chunks), as HTML; an edit redraws the last."""
    parts: list[str] = []
    chunk: list[str] = []
    for line in lines:
        candidate = separator.join([*chunk, line])
        if chunk and len(text(context, language, key, lines=Safe(candidate))) > 3800:
            parts.append(text(context, language, key, lines=Safe(separator.join(chunk))))
            chunk = []
        chunk.append(line)
    parts.append(text(context, language, key, lines=Safe(separator.join(chunk))))
    return parts


async def reply_html(
    update: Update, html_text: str, markup: InlineKeyboardMarkup | None = None
) -> Message:
    message = update.effective_message
    assert message is not None
    return await message.reply_text(html_text, reply_markup=markup)



async def show_typing(context: Context, chat_id: int) -> None:
    """"typing…" is a courtesy: when Telegram fails to show it, the command goes on regardless."""
    try:
        await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
    except TelegramError as error:
        log.debug("typing indicator not shown in chat %s: %s", chat_id, error)


async def until_stopping(context: Context, work: Awaitable[T]) -> T | None:
    """The work's result, or None when the bot stops first: the application waits for its
    background tasks at shutdown, and must not wait on a slow peer."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(services(context).stopping.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()
