"""/subscribe, /unsubscribe, /topics: what a chat (or forum topic) follows."""

from __future__ import annotations

import html
import logging

from sqlmodel import Session
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)

from handlers.common import (
    Context,
    answer_button,
    argument_text,
    chat_language,
    chunks,
    edit_message,
    is_admin,
    keyboard_without,
    refuse_unless_configurable,
    reply,
    reply_chunks,
    services,
    text,
    thread_of,
    until_stopping,
)
from handlers.feedback import topic_feedback
from handlers.following import follow
from handlers.packs import nothing_matched
from handlers.semantic import semantic_counts, semantic_followed, subscribe_semantic
from locales import Catalog, Safe
from news import following
from news.matching import Topic
from news.preview import preview, topic_counts
from news.render import headline_link
from news.semantic import is_semantic, topic_label
from news.text import TITLE_CHARS, clip, excerpt
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
from storage import subscriptions, suggestions, usage
from storage.db import db
from storage.models import Subscription

log = logging.getLogger(__name__)
PIN = "!"  # `/subscribe !query`: track the topic closely (重点追踪)


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


async def preview_text(context: Context, language: str, query: str, *, admin: bool = False
                       ) -> str:
    """What the query would have matched this week; when nothing, why (handlers.packs)."""
    found = await db(services(context).engine, preview, query=query)
    if not found.count:
        return nothing_matched(context, language, admin=admin)
    lines = "\n".join(f"• {headline_link(clip(item.title, TITLE_CHARS), item.link)}"
                      for item in found.newest)
    return text(context, language, "subscribe.preview", plural=found.count, lines=Safe(lines))


async def subscribe(update: Update, context: Context) -> None:
    """Follow a topic; say how it was understood and what it would have matched this week.
    A leading `!` tracks it closely, and pins a topic the chat already follows."""
    language = await chat_language(update, context)
    if await refuse_unless_configurable(update, context, language):
        return
    raw = argument_text(update)
    pinned = raw.startswith(PIN)
    if is_semantic(raw.removeprefix(PIN)):  # `~meaning`: followed by meaning
        await subscribe_semantic(update, context, language, raw.removeprefix(PIN), pinned)
        return
    try:
        query = canonical(parse(raw.removeprefix(PIN)))
    except QueryError as error:
        await reply(update, context, language, f"query.error.{error.code}")
        return
    followed = await follow(update, context, language, query, pinned)
    if followed is None:
        return
    subscription_id, query = followed
    svc = services(context)
    found = await preview_text(context, language, query, admin=await is_admin(update, context))
    done = text(context, language, "subscribe.done", query=query,
                understood=understood(context, language, query), preview=Safe(found))
    if pinned:
        done += "\n" + text(context, language, "topics.pinned_done", query=query)
    message = update.effective_message
    assert message is not None
    message = await message.reply_text(done)
    if svc.aliases.online:  # in the background: the next update need not wait on the model
        context.application.create_task(
            offer_suggestions(context, message, subscription_id, query), update=update,
            name=f"aliases:{subscription_id}")


async def offer_suggestions(
    context: Context, message: Message, subscription_id: int, query: str
) -> None:
    """With an LLM and budget left: one-tap aliases in other scripts and senses to exclude, as
    buttons; the call counts in usage and against the daily token budget like a brief."""
    svc = services(context)
    if await db(svc.engine, usage.over_budget, budget=svc.daily_token_budget):
        log.info("no alias suggestions for %r: daily token budget spent", query)
        return
    terms = [term.text for term in positive_terms(parse(query))]
    offer = await until_stopping(context, svc.aliases.suggest(query, terms))
    if offer is None:  # the bot is stopping: it need not wait for the model
        return
    await db(svc.engine, usage.record_calls, calls=offer.calls, failures=offer.failures,
             tokens_in=offer.tokens_in, tokens_out=offer.tokens_out)
    found = offer.suggestions
    if not found.aliases and not found.exclusions:
        return
    rows = await db(svc.engine, _save_suggestions, subscription_id=subscription_id,
                    aliases=found.aliases, exclusions=found.exclusions)
    if not rows:  # the topic was removed while the model thought
        return
    buttons = [InlineKeyboardButton(("➕ " if kind == "alias" else "➖ ") + word,
                                    callback_data=f"sug:{row_id}") for row_id, kind, word in rows]
    keyboard = [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
    await edit_message(message, markup=InlineKeyboardMarkup(keyboard))


def _save_suggestions(
    *, session: Session, subscription_id: int, aliases: list[str], exclusions: list[str]
) -> list[tuple[int, str, str]]:
    """The stored suggestions as (id, kind, text); none when the topic is gone by now."""
    if subscriptions.get(session=session, subscription_id=subscription_id) is None:
        return []
    rows = (suggestions.save(session=session, subscription_id=subscription_id, kind="alias",
                             texts=aliases)
            + suggestions.save(session=session, subscription_id=subscription_id,
                               kind="exclude", texts=exclusions))
    return [(row.id or 0, row.kind, row.text) for row in rows]


def refined(query: str, kind: str, word: str) -> str:
    """The query with an alias OR-ed in, or a sense excluded."""
    node = parse(query)
    if kind == "alias":
        options = node.nodes if isinstance(node, Or) else (node,)
        return canonical(Or((*options, Term(word))))
    parts = node.nodes if isinstance(node, And) else (node,)
    return canonical(And((*parts, Not(Term(word)))))


def _apply_suggestion(*, session: Session, suggestion_id: int, chat_id: int) -> tuple[str, str]:
    """(catalogue key, query): the topic with the suggestion applied, or why it was not."""
    suggestion = suggestions.get(session=session, suggestion_id=suggestion_id)
    subscription = None
    if suggestion is not None:
        subscription = subscriptions.get(session=session,
                                         subscription_id=suggestion.subscription_id)
    if suggestion is None or subscription is None or subscription.chat_id != chat_id:
        return "button.stale", ""
    query = refined(subscription.query, suggestion.kind, suggestion.text)
    if len(query) > MAX_QUERY_CHARS:  # the matcher would drop it: refuse, keep the button
        return "suggest.too_long", query
    changed = subscriptions.change_query(session=session, subscription=subscription, query=query)
    suggestions.drop(session=session, suggestion=suggestion)
    return ("suggest.done" if changed else "subscribe.exists"), query


async def press_suggestion(update: Update, context: Context, suggestion_id: int) -> None:
    """Tapping ➕/➖ rewrites the topic and the offer in place: the topic as it now reads, the
    pressed button gone, the others kept; a stale or forged button changes nothing."""
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    outcome, query = await db(services(context).engine, _apply_suggestion,
                              suggestion_id=suggestion_id, chat_id=chat.id)
    if outcome in ("button.stale", "suggest.too_long"):
        await answer_button(update, context, language, outcome)
        return
    await answer_button(update, context, language, outcome, query=clip(query, 60))
    message = update.effective_message
    if message is None:
        return
    markup = keyboard_without(message, f"sug:{suggestion_id}")
    if outcome != "suggest.done":  # the topic already read so: only the button goes
        await edit_message(message, markup=markup)
        return
    found = await preview_text(context, language, query, admin=await is_admin(update, context))
    await edit_message(message, text(context, language, "subscribe.done", query=query,
                                     understood=understood(context, language, query),
                                     preview=Safe(found)), markup=markup)


async def unsubscribe(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    if await refuse_unless_configurable(update, context, language):
        return
    chat = update.effective_chat
    assert chat is not None
    raw = argument_text(update)
    engine = services(context).engine
    if not raw:
        rows = await db(engine, subscriptions.for_chat, chat_id=chat.id,
                        thread_id=thread_of(update))
        buttons = [[InlineKeyboardButton(f"✖ {topic_label(row.query)}"[:60],
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
    if is_semantic(raw):  # `~meaning`, whatever its threshold and terms now
        stored: str | None = await db(engine, semantic_followed, chat_id=chat.id,
                                      thread_id=thread_of(update), raw=raw)
        query = stored or raw
    removed = await db(engine, following.remove, chat_id=chat.id, query=query,
                       thread_id=thread_of(update))
    await reply(update, context, language,
                "unsubscribe.done" if removed else "unsubscribe.not_found",
                query=topic_label(removed) if removed else excerpt(raw))


def _remove_by_id(*, session: Session, subscription_id: int, chat_id: int) -> str | None:
    """The removed topic's query; None when it is gone or not this chat's."""
    row = subscriptions.get(session=session, subscription_id=subscription_id)
    if row is None or row.chat_id != chat_id:
        return None
    session.delete(row)
    return row.query


async def press_unsubscribe(update: Update, context: Context, subscription_id: int) -> None:
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    query = await db(services(context).engine, _remove_by_id,
                     subscription_id=subscription_id, chat_id=chat.id)
    if query is None:
        await answer_button(update, context, language, "button.stale")
        return
    await answer_button(update, context, language, "unsubscribe.done", query=topic_label(query))
    message = update.effective_message
    if message is not None:
        await edit_message(message, text(context, language, "unsubscribe.done",
                                         query=topic_label(query)))


async def topics(update: Update, context: Context) -> None:
    """The topics, numbered, each with the stories it matched in the last 7 days; 📌 marks
    those tracked closely, and a button per topic pins or unpins it."""
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    followed = await db(services(context).engine, subscriptions.for_chat, chat_id=chat.id,
                        thread_id=thread_of(update))
    if not followed:
        await reply(update, context, language, "topics.empty")
        return
    lines, keyboard = await topics_view(context, language, followed)
    await reply_chunks(update, context, language, "topics.list", lines, separator="\n",
                       markup=keyboard)


async def topics_view(
    context: Context, language: str, followed: list[Subscription]
) -> tuple[list[str], InlineKeyboardMarkup]:
    """/topics' lines and keyboard, as they stand: drawn anew after every press on them."""
    engine = services(context).engine
    rows = [Topic(row.id or 0, row.chat_id, row.thread_id, row.query) for row in followed]
    markup = pin_keyboard(context, language, followed)
    pinned = {row.id for row in followed if row.pinned}
    counts = await db(engine, topic_counts, topics=rows)
    if any(is_semantic(row.query) for row in rows):  # counted by meaning, not by words
        svc = services(context)
        counts |= await db(engine, semantic_counts, model=svc.embedder.model,
                           dims=svc.embedder.dimensions, topics=rows)
    extra, unmute = await db(engine, topic_feedback, context=context, language=language,
                             subscription_ids=[row.id for row in rows])
    lines = [text(context, language, "topics.line", number=n, query=topic_label(row.query),
                  count=counts[row.id])
             + (" " + text(context, language, "topics.pinned") if row.id in pinned else "")
             + extra[row.id] for n, row in enumerate(rows, start=1)]
    keyboard = [*markup.inline_keyboard, *unmute][:PIN_BUTTONS]
    return lines, InlineKeyboardMarkup(keyboard)


PIN_BUTTONS = 100  # Telegram's cap on an inline keyboard's buttons


def pin_keyboard(
    context: Context, language: str, followed: list[Subscription]
) -> InlineKeyboardMarkup:
    """One toggle per topic: 📌 to track it closely, or to stop."""
    buttons = []
    for row in followed[:PIN_BUTTONS]:
        key = "topics.unpin" if row.pinned else "topics.pin"
        said = html.unescape(text(context, language, key, query=clip(topic_label(row.query), 40)))
        buttons.append([InlineKeyboardButton(said, callback_data=f"pin:{row.id}")])
    return InlineKeyboardMarkup(buttons)


def _toggle_pin(
    *, session: Session, subscription_id: int, chat_id: int
) -> tuple[bool, str, list[Subscription]] | None:
    """Flip the pin; the new state, the query and the chat's topics, or None if not its own."""
    row = subscriptions.get(session=session, subscription_id=subscription_id)
    if row is None or row.chat_id != chat_id:
        return None
    subscriptions.set_pinned(session=session, subscription=row, pinned=not row.pinned)
    followed = subscriptions.for_chat(session=session, chat_id=chat_id, thread_id=row.thread_id)
    return row.pinned, row.query, followed


async def press_pin(update: Update, context: Context, subscription_id: int) -> None:
    """The /topics 📌 button: track the topic closely, or stop; the keyboard flips with it."""
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    toggled = await db(services(context).engine, _toggle_pin, subscription_id=subscription_id,
                       chat_id=chat.id)
    if toggled is None:
        await answer_button(update, context, language, "button.stale")
        return
    now_pinned, query, followed = toggled
    key = "topics.pin_toast" if now_pinned else "topics.unpin_toast"
    await answer_button(update, context, language, key, query=clip(topic_label(query), 40))
    message = update.effective_message
    if message is not None:  # the list's last part, which carries the keyboard
        lines, keyboard = await topics_view(context, language, followed)
        await edit_message(message, chunks(context, language, "topics.list", lines,
                                           separator="\n")[-1], markup=keyboard)
