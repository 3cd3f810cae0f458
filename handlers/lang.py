"""/lang: the language of briefs and of the bot's own words in this chat."""

from __future__ import annotations

from telegram import Update

from handlers.common import Context, argument_text, chat_language, language_code, reply, services
from news.briefs import language_name
from storage import chats
from storage.db import session_scope


async def lang(update: Update, context: Context) -> None:
    current = chat_language(update, context)
    raw = argument_text(update)
    if not raw:
        await reply(update, context, current, "lang.usage", current=current,
                    available=", ".join(services(context).catalog.languages))
        return
    code = language_code(raw, services(context))
    if code is None or " " in raw:
        await reply(update, context, current, "lang.unknown", code=raw)
        return
    chat = update.effective_chat
    assert chat is not None
    with session_scope(services(context).engine) as session:
        chats.set_language(session=session, chat_id=chat.id, language=code)
    await reply(update, context, code, "lang.done", code=code, name=language_name(code))
