"""/subscribe, /unsubscribe, /topics: what a chat (or forum topic) follows."""

from __future__ import annotations

import asyncio

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode

from handlers.common import (
    Context,
    answer_button,
    argument_text,
    chat_language,
    refuse_unless_configurable,
    reply,
    reply_chunks,
    services,
    text,
    thread_of,
)
from handlers.feedback import topic_feedback
from locales import Catalog, Safe
from news.matching import Topic
from news.pipeline import preview, topic_counts
from news.render import headline_link
from news.text import TITLE_CHARS, clip
from news.topics import (
    MAX_QUERY_CHARS,
    And,
    Not,
    Or,
    QueryError,
    Term,
    Wording,
    canonical,
    describe,
    parse,
    positive_terms,
)
from storage import subscriptions, suggestions
from storage.db import session_scope


def wording(catalog: Catalog, language: str) -> Wording:
    """How the language says "X and Y", "X or Y", "X without Y" when reading a query back."""
    return Wording(
        term=catalog.text(language, "query.term"),
        group=catalog.text(language, "query.group"),
        both=catalog.text(language, "query.and"),
        either=catalog.text(language, "query.or"),
        without=catalog.text(language, "query.except"),
        negated=catalog.text(language, "query.not"),
    )


def understood(context: Context, language: str, query: str) -> str:
    return describe(parse(query), wording(services(context).catalog, language))


def preview_text(context: Context, language: str, query: str) -> str:
    found = preview(services(context).engine, query)
    if not found.count:
        return text(context, language, "subscribe.preview_none")
    lines = "\n".join(f"• {headline_link(clip(item.title, TITLE_CHARS), item.link)}"
                      for item in found.newest)
    return text(context, language, "subscribe.preview", plural=found.count, lines=Safe(lines))


async def subscribe(update: Update, context: Context) -> None:
    """Follow a topic; say how it was understood and what it would have matched this week."""
    language = chat_language(update, context)
    if await refuse_unless_configurable(update, context, language):
        return
    try:
        query = canonical(parse(argument_text(update)))
    except QueryError as error:
        await reply(update, context, language, f"query.error.{error.code}")
        return
    chat = update.effective_chat
    assert chat is not None
    with session_scope(services(context).engine) as session:
        row = subscriptions.add(session=session, chat_id=chat.id, query=query,
                                thread_id=thread_of(update))
        subscription_id = row.id if row else None
    if subscription_id is None:
        await reply(update, context, language, "subscribe.exists", query=query)
        return
    found = await asyncio.to_thread(preview_text, context, language, query)
    message = await reply(update, context, language, "subscribe.done", query=query,
                          understood=understood(context, language, query), preview=Safe(found))
    await offer_suggestions(context, message, subscription_id, query)


async def offer_suggestions(
    context: Context, message: Message, subscription_id: int, query: str
) -> None:
    """With an LLM: one-tap aliases in other scripts and senses to exclude, as buttons."""
    svc = services(context)
    terms = [term.text for term in positive_terms(parse(query))]
    found = await svc.aliases.suggest(query, terms)
    if not found.aliases and not found.exclusions:
        return
    with session_scope(svc.engine) as session:
        rows = (suggestions.save(session=session, subscription_id=subscription_id, kind="alias",
                                 texts=found.aliases)
                + suggestions.save(session=session, subscription_id=subscription_id,
                                   kind="exclude", texts=found.exclusions))
        buttons = [InlineKeyboardButton(("➕ " if row.kind == "alias" else "➖ ") + row.text,
                                        callback_data=f"sug:{row.id}") for row in rows]
    keyboard = [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
    await message.edit_reply_markup(InlineKeyboardMarkup(keyboard))


def refined(query: str, kind: str, word: str) -> str:
    """The query with an alias OR-ed in, or a sense excluded."""
    node = parse(query)
    if kind == "alias":
        options = node.nodes if isinstance(node, Or) else (node,)
        return canonical(Or((*options, Term(word))))
    parts = node.nodes if isinstance(node, And) else (node,)
    return canonical(And((*parts, Not(Term(word)))))


async def press_suggestion(update: Update, context: Context, suggestion_id: int) -> None:
    """Tapping ➕/➖ rewrites the topic; a stale or forged button changes nothing."""
    language = chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    with session_scope(services(context).engine) as session:
        suggestion = suggestions.get(session=session, suggestion_id=suggestion_id)
        subscription = None
        if suggestion is not None:
            subscription = subscriptions.get(session=session,
                                             subscription_id=suggestion.subscription_id)
        if suggestion is None or subscription is None or subscription.chat_id != chat.id:
            await answer_button(update, context, language, "button.stale")
            return
        query = refined(subscription.query, suggestion.kind, suggestion.text)
        if len(query) > MAX_QUERY_CHARS:  # the matcher would drop it: refuse, keep the button
            await answer_button(update, context, language, "suggest.too_long")
            return
        changed = subscriptions.change_query(session=session, subscription=subscription,
                                             query=query)
        suggestions.drop(session=session, suggestion=suggestion)
    key = "suggest.done" if changed else "subscribe.exists"
    await answer_button(update, context, language, key, query=query)
    message = update.effective_message
    if changed and message is not None:
        await message.reply_text(
            text(context, language, "suggest.done", query=query) + "\n"
            + text(context, language, "subscribe.understood",
                   understood=understood(context, language, query)),
            parse_mode=ParseMode.HTML, do_quote=False)


async def unsubscribe(update: Update, context: Context) -> None:
    language = chat_language(update, context)
    if await refuse_unless_configurable(update, context, language):
        return
    chat = update.effective_chat
    assert chat is not None
    raw = argument_text(update)
    engine = services(context).engine
    if not raw:
        with session_scope(engine) as session:
            rows = subscriptions.for_chat(session=session, chat_id=chat.id,
                                          thread_id=thread_of(update))
            buttons = [[InlineKeyboardButton(f"✖ {row.query}"[:60],
                                             callback_data=f"unsub:{row.id}")] for row in rows]
        if not buttons:
            await reply(update, context, language, "topics.empty")
            return
        await reply(update, context, language, "unsubscribe.choose",
                    markup=InlineKeyboardMarkup(buttons))
        return
    try:
        query = raw if raw.isdigit() else canonical(parse(raw))
    except QueryError:
        query = raw
    with session_scope(engine) as session:
        removed = subscriptions.remove(session=session, chat_id=chat.id, query=query,
                                       thread_id=thread_of(update))
    await reply(update, context, language,
                "unsubscribe.done" if removed else "unsubscribe.not_found", query=removed or raw)


async def press_unsubscribe(update: Update, context: Context, subscription_id: int) -> None:
    language = chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    with session_scope(services(context).engine) as session:
        row = subscriptions.get(session=session, subscription_id=subscription_id)
        if row is None or row.chat_id != chat.id:
            await answer_button(update, context, language, "button.stale")
            return
        query = row.query
        session.delete(row)
    await answer_button(update, context, language, "unsubscribe.done", query=query)
    message = update.effective_message
    if message is not None:
        await message.edit_text(text(context, language, "unsubscribe.done", query=query),
                                parse_mode=ParseMode.HTML)


async def topics(update: Update, context: Context) -> None:
    """The topics, numbered, each with the stories it matched in the last 7 days."""
    language = chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    engine = services(context).engine
    with session_scope(engine) as session:
        rows = [Topic(row.id or 0, row.chat_id, row.thread_id, row.query)
                for row in subscriptions.for_chat(session=session, chat_id=chat.id,
                                                  thread_id=thread_of(update))]
    if not rows:
        await reply(update, context, language, "topics.empty")
        return
    counts = await asyncio.to_thread(topic_counts, engine, rows)
    extra, unmute = await asyncio.to_thread(topic_feedback, context, language,
                                            [row.id for row in rows])
    lines = [text(context, language, "topics.line", number=n, query=row.query,
                  count=counts[row.id]) + extra[row.id] for n, row in enumerate(rows, start=1)]
    await reply_chunks(update, context, language, "topics.list", lines, separator="\n",
                       markup=InlineKeyboardMarkup(unmute) if unmute else None)
