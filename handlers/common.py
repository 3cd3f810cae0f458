"""What every command handler does first: find its services, its chat, its language."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError
from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from services import KEY, Services
from storage import admins, chats
from storage.db import session_scope

Context = ContextTypes.DEFAULT_TYPE


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


def chat_language(update: Update, context: Context) -> str:
    """The chat's language, creating the chat on first contact from the user's language_code."""
    svc = services(context)
    chat = update.effective_chat
    assert chat is not None
    user = update.effective_user
    first = language_code(user.language_code if user else None, svc) or svc.default_language
    with session_scope(svc.engine) as session:
        row = chats.ensure_chat(session=session, chat_id=chat.id, chat_type=chat.type,
                                title=chat.title or chat.username, language=first)
        return row.language


def text(context: Context, language: str, key: str, **values: object) -> str:
    return services(context).catalog.text(language, key, **values)


async def reply(
    update: Update, context: Context, language: str, key: str, **values: object
) -> None:
    """Answer in the chat's language, as HTML (the catalogue's values are escaped)."""
    message = update.effective_message
    assert message is not None
    await message.reply_text(text(context, language, key, **values), parse_mode=ParseMode.HTML,
                             do_quote=False)


def is_admin(update: Update, context: Context) -> bool:
    svc = services(context)
    user = update.effective_user
    if user is None:
        return False
    with session_scope(svc.engine) as session:
        return admins.is_admin(session=session, user_id=user.id, permanent=svc.admin_ids)


def argument_text(update: Update) -> str:
    """Everything after the command, with its original spacing and quotes intact."""
    message = update.effective_message
    raw = (message.text or "") if message else ""
    parts = raw.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""
