"""/trend [topic number or query] [DAYS]: a topic's stories per day, as a chart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from sqlmodel import Session
from telegram import Update

from handlers.common import (
    Context,
    argument_text,
    chat_language,
    reply,
    services,
    text,
    thread_of,
)
from news import trend as charts
from news.semantic import topic_label
from news.text import TITLE_CHARS, clip, excerpt
from news.topics import QueryError, canonical, parse
from news.types import whole_number
from storage import chats, subscriptions
from storage.db import db

# A trailing word that looks like a number is the DAYS argument (so `-3` or `2.5` is refused).
_NUMBER = re.compile(r"[-+]?[0-9]+(?:[.,][0-9]+)?")


@dataclass(frozen=True)
class Asked:
    """What /trend was asked for: "" (the first topic), a topic number, or a query; and days."""

    topic: str
    days: int = charts.DEFAULT_DAYS


class BadDays(ValueError):
    """DAYS is not a whole number from 1 to MAX_DAYS."""


def read_arguments(raw: str) -> Asked:
    """`1 30`, `SoftBank 14`, `"data center"`, `` -> Asked; a bad DAYS raises BadDays."""
    words = raw.split()
    if not words:
        return Asked("")
    last = words[-1]
    if len(words) == 1 or not (_NUMBER.fullmatch(last) or (len(words) == 2 and
                                                           _is_number(words[0]))):
        return Asked(raw.strip())
    days = whole_number(last, high=charts.MAX_DAYS)
    if days is None:
        raise BadDays(last)
    return Asked(raw.strip().rsplit(maxsplit=1)[0].strip(), days)


def _is_number(word: str) -> bool:
    """ASCII digits only: "²" passes `str.isdigit` but is a query, not a number."""
    return word.isascii() and word.isdigit()


def _topics_and_zone(*, session: Session, chat_id: int, thread_id: int) -> tuple[list[str], str]:
    """This thread's topic queries, numbered as /topics numbers them, and the chat's zone."""
    topics = [row.query for row in subscriptions.for_chat(session=session, chat_id=chat_id,
                                                          thread_id=thread_id)]
    row = chats.get(session=session, chat_id=chat_id)
    return topics, row.timezone if row is not None else "UTC"


async def trend(update: Update, context: Context) -> None:
    """Anyone in the chat may look: a chart changes nothing."""
    language = await chat_language(update, context)
    chat, message = update.effective_chat, update.effective_message
    assert chat is not None and message is not None
    svc = services(context)
    try:
        asked = read_arguments(argument_text(update))
    except BadDays as bad:
        await reply(update, context, language, "trend.bad_days", value=clip(str(bad), 20))
        return
    topics, timezone = await db(svc.engine, _topics_and_zone, chat_id=chat.id,
                                thread_id=thread_of(update))
    if not asked.topic and not topics:
        await reply(update, context, language, "trend.no_topics")
        return
    if not asked.topic or _is_number(asked.topic):
        number = whole_number(asked.topic or "1", high=len(topics))
        if number is None:
            await reply(update, context, language, "trend.no_topic",
                        number=excerpt(asked.topic, 20))
            return
        query = topics[number - 1]
    else:
        try:
            query = canonical(parse(asked.topic))
        except QueryError as error:
            # One message: what is wrong with the query, then how /trend is used.
            await message.reply_text(
                text(context, language, f"query.error.{error.code}") + "\n\n"
                + text(context, language, "trend.usage"))
            return
    t = partial(svc.catalog.text, language)
    found = await svc.draw(partial(charts.trend_chart, svc.engine, t, language=language,
                                   timezone=timezone, query=query, days=asked.days))
    if found.png is None:
        await reply(update, context, language, "trend.empty",
                    topic=clip(topic_label(query), TITLE_CHARS), days=asked.days)
        return
    await message.reply_photo(found.png, caption=charts.caption(t, language, query, asked.days,
                                                                found.trend),
                              filename="trend.png")
