"""Chat life events: the bot added, removed or blocked; a group migrated to a supergroup."""

from __future__ import annotations

import logging

from telegram import Update

from handlers.common import Context, language_code, services
from storage import chats
from storage.db import db

log = logging.getLogger(__name__)
GONE = ("left", "kicked")


async def membership(update: Update, context: Context) -> None:
    """Removed or blocked: receive nothing. Added back: receive again, subscriptions intact."""
    change = update.my_chat_member
    if change is None:
        return
    svc = services(context)
    chat = change.chat
    if change.new_chat_member.status in GONE:
        await db(svc.engine, chats.deactivate, chat_id=chat.id)
        log.info("chat %s removed or blocked the bot", chat.id)
        return
    language = language_code(change.from_user.language_code, svc) or svc.default_language
    await db(svc.engine, chats.ensure_chat, chat_id=chat.id, chat_type=chat.type,
             title=chat.title or chat.username, language=language)
    log.info("chat %s added the bot", chat.id)


async def migration(update: Update, context: Context) -> None:
    """Both the old group's and the new supergroup's service messages lead here; either works."""
    message = update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id:
        old, new = message.chat.id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id:
        old, new = message.migrate_from_chat_id, message.chat.id
    else:
        return
    if await db(services(context).engine, chats.migrate, old_id=old, new_id=new):
        log.info("chat %s migrated to %s", old, new)
