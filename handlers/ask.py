"""/ask [all] QUESTION: an answer from the stored stories, each claim citing its story; without
an LLM (or its budget), the most relevant stored stories."""

from __future__ import annotations

import logging

from sqlmodel import Session
from telegram import Update

from handlers.common import (
    Context,
    argument_text,
    chat_language,
    reply,
    reply_html,
    services,
    show_typing,
    text,
    thread_of,
    until_stopping,
)
from handlers.ratelimit import Verdict, sender_of
from news.ask import (
    MAX_SOURCES,
    Found,
    ask_model,
    fuse,
    in_topics,
    question_terms,
    render_answer,
    stories_list,
)
from storage import story_search, subscriptions, usage
from storage.db import db

log = logging.getLogger(__name__)

CANDIDATES = 60  # fused stories read to find the few in the chat's topics


def split_scope(raw: str) -> tuple[bool, str]:
    """`all what happened?` -> (True, "what happened?"); anything else asks within topics."""
    first, _, rest = raw.partition(" ")
    if first.lower() in {"all", "*"}:
        return True, rest.strip()
    return False, raw.strip()


def relevant(*, session: Session, question: str, topics: list[str] | None) -> list[Found]:
    """The stored stories best fitting the question, from every search's ranking fused; within
    the chat's topics unless `topics` is None."""
    rankings = story_search.ranked(session=session, terms=question_terms(question))
    story_ids = fuse(rankings)[:CANDIDATES if topics is not None else MAX_SOURCES]
    found = story_search.stories(session=session, story_ids=story_ids)
    if topics is not None:
        found = in_topics(found, topics)
    return found[:MAX_SOURCES]


def _topics(*, session: Session, chat_id: int, thread_id: int) -> list[str]:
    return [row.query for row in subscriptions.for_chat(session=session, chat_id=chat_id,
                                                        thread_id=thread_id)]


async def ask(update: Update, context: Context) -> None:
    """Anyone in the chat may ask: an answer changes nothing. Each question costs the asker
    one of ASKS_PER_HOUR (bot admins exempt), on top of the command limit."""
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    svc = services(context)
    everything, question = split_scope(argument_text(update))
    if not question:
        await reply(update, context, language, "ask.usage")
        return
    sender = sender_of(update)
    if (svc.asks is not None and sender is not None and sender not in svc.admin_ids
            and svc.asks.admit(sender) is not Verdict.ADMIT):
        await reply(update, context, language, "ask.limited")
        return
    topics = None
    if not everything:
        topics = await db(svc.engine, _topics, chat_id=chat.id, thread_id=thread_of(update))
        if not topics:
            await reply(update, context, language, "ask.no_topics")
            return
    await show_typing(context, chat.id)
    found = await db(svc.engine, relevant, question=question, topics=topics)
    if not found:
        await reply(update, context, language,
                    "ask.nothing_all" if everything else "ask.nothing")
        return
    if not svc.writer.online:
        await _list(update, context, language, found, "ask.offline")
        return
    if await db(svc.engine, usage.over_budget, budget=svc.daily_token_budget):
        log.info("/ask answered with a list: daily token budget spent")
        await _list(update, context, language, found, "ask.offline")
        return
    asked = await until_stopping(context, ask_model(svc.writer, question, found, language))
    if asked is None:  # the bot is stopping: it need not wait for the model
        return
    await db(svc.engine, usage.record_calls, calls=asked.calls, failures=asked.failures,
             tokens_in=asked.tokens_in, tokens_out=asked.tokens_out)
    if asked.answer is None:
        await _list(update, context, language, found, "ask.rejected")
    elif not asked.answer.answered:
        await _list(update, context, language, found, "ask.unanswered")
    else:
        await reply_html(update, render_answer(
            asked.answer.answer, found, text(context, language, "ask.header"),
            text(context, language, "ask.sources")))


async def _list(update: Update, context: Context, language: str, found: list[Found],
                key: str) -> None:
    await reply_html(update, stories_list(found, text(context, language, key)))
