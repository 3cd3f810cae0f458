"""/digest [HOURS]: the stories that matched this chat lately, grouped by topic."""

from __future__ import annotations

from datetime import timedelta

from telegram import Update

from handlers.common import Context, argument_text, chat_language, reply, services, thread_of
from jobs.digest import send_digest
from news.types import whole_number
from storage import chats
from storage.db import database_now, db

MAX_HOURS = 24 * 7


async def digest(update: Update, context: Context) -> None:
    """Default: since the last digest, at most 24 hours back."""
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    raw = argument_text(update)
    # The alerts' times are the database's (storage.db.database_now), whichever replica answers.
    now = await db(services(context).engine, database_now)
    if raw:
        hours = whole_number(raw, high=MAX_HOURS)
        if hours is None:
            await reply(update, context, language, "digest.usage", max=MAX_HOURS)
            return
        since = now - timedelta(hours=hours)
    else:
        row = await db(services(context).engine, chats.get, chat_id=chat.id)
        last = row.last_digest_at if row else None
        since = max(last, now - timedelta(hours=24)) if last else now - timedelta(hours=24)
    sent = await send_digest(context, services(context), chat.id, language, since=since,
                             held_only=False, thread_id=thread_of(update) or None)
    if not sent:
        await reply(update, context, language, "digest.empty")
