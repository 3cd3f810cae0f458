"""/subscribe, /unsubscribe, /topics: what a chat follows."""

from __future__ import annotations

from telegram import Update

from handlers.common import Context, argument_text, chat_language, reply, services, text
from locales import Safe
from news.topics import QueryError, canonical, describe, parse
from storage import subscriptions
from storage.db import session_scope


async def subscribe(update: Update, context: Context) -> None:
    """Follow a topic and say how the query was understood, so a surprise shows at once."""
    language = chat_language(update, context)
    raw = argument_text(update)
    try:
        node = parse(raw)
    except QueryError as error:
        await reply(update, context, language, f"query.error.{error.code}")
        return
    query = canonical(node)
    chat = update.effective_chat
    assert chat is not None
    with session_scope(services(context).engine) as session:
        added = subscriptions.add(session=session, chat_id=chat.id, query=query)
    if not added:
        await reply(update, context, language, "subscribe.exists", query=query)
        return
    understood = describe(
        node,
        and_word=text(context, language, "query.and"),
        or_word=text(context, language, "query.or"),
        not_word=text(context, language, "query.not"),
    )
    await reply(update, context, language, "subscribe.done", query=query, understood=understood)


async def unsubscribe(update: Update, context: Context) -> None:
    language = chat_language(update, context)
    raw = argument_text(update)
    if not raw:
        await reply(update, context, language, "unsubscribe.usage")
        return
    try:
        query = raw if raw.isdigit() else canonical(parse(raw))
    except QueryError:
        query = raw
    chat = update.effective_chat
    assert chat is not None
    with session_scope(services(context).engine) as session:
        removed = subscriptions.remove(session=session, chat_id=chat.id, query=query)
    await reply(update, context, language,
                "unsubscribe.done" if removed else "unsubscribe.not_found", query=removed or raw)


async def topics(update: Update, context: Context) -> None:
    language = chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    with session_scope(services(context).engine) as session:
        rows = subscriptions.for_chat(session=session, chat_id=chat.id)
    if not rows:
        await reply(update, context, language, "topics.empty")
        return
    lines = [text(context, language, "topics.line", number=n, query=row.query)
             for n, row in enumerate(rows, start=1)]
    await reply(update, context, language, "topics.list", lines=Safe("\n".join(lines)))
