"""Each chat that asked for it (`/settings weekly on`) gets, at its weekly time, one message
per topic that brought it alerts that week: the week's storyline, or its alerts by level."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from telegram.error import Forbidden, TelegramError
from telegram.ext import CallbackContext

from jobs.runtime import holds
from news import weekly
from news.schedule import WEEK, iso_week, weekly_due, weekly_moment, zone
from news.trend import day_label
from services import KEY, Services
from storage import chats, usage
from storage import weekly as stored
from storage.db import database_now, db
from storage.models import Chat

log = logging.getLogger(__name__)
SECOND = timedelta(seconds=1)  # the week ends the day before a brief due at midnight


class Busy(Exception):
    """Another replica is writing one of the chat's storylines: the chat waits a tick."""


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """One weekly brief per chat and week across every replica: the chat's turn is claimed
    (compare and set of `weekly_brief_at`) before anything is sent, as the digest's is."""
    svc: Services = context.bot_data[KEY]
    if not await holds(svc.sending):
        return  # sent with the alerts, by the replica that sends (jobs.deliver)
    now = await db(svc.engine, database_now)  # weekly_brief_at is compared by every replica
    for chat in await db(svc.engine, stored.chats_on):
        if svc.stopping.is_set():
            return
        moment = weekly_moment(day=chat.weekly_day, clock=chat.weekly_time,
                               timezone=chat.timezone, now=now)
        if weekly_due(moment, chat.weekly_brief_at):
            try:
                await send_weekly(context, svc, chat, moment)
            except Busy:
                continue


async def send_weekly(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, chat: Chat, moment: datetime
) -> int:
    """Compose the chat's messages (writing or reading each shared storyline), claim the
    chat's turn, send; a Telegram failure gives the turn back, so it is tried again."""
    now = await db(svc.engine, database_now)
    topics = await db(svc.engine, weekly.week_topics, chat_id=chat.id, language=chat.language,
                      since=moment - WEEK, until=now)
    week = iso_week(moment)
    t = partial(svc.catalog.text, chat.language)
    label = partial(day_label, language=chat.language)
    messages: list[tuple[int, str]] = []
    tz = zone(chat.timezone)
    start, end = (moment - WEEK).astimezone(tz).date(), (moment - SECOND).astimezone(tz).date()
    for topic in topics:
        head = weekly.title(t, topic=topic.query, pinned=topic.pinned, start=start, end=end,
                            day_label=label)
        found = await storyline(svc, topic, week, chat.language)
        if found is not None and found.payload is not None:
            text = weekly.render_storyline(weekly.Storyline.model_validate_json(found.payload),
                                           found.stories, head=head, t=t,
                                           language=chat.language)
        else:
            text = weekly.render_by_level(topic.stories, head=head, t=t, language=chat.language)
        messages.append((topic.thread_id, text))
    if not await db(svc.engine, stored.claim_chat, chat_id=chat.id, seen=chat.weekly_brief_at,
                    at=now):
        return 0  # another replica sent it
    try:
        for thread_id, text in messages:
            await context.bot.send_message(chat.id, text, message_thread_id=thread_id or None)
    except Forbidden:
        await db(svc.engine, chats.deactivate, chat_id=chat.id)
        return 0
    except TelegramError as error:
        log.warning("weekly brief for chat %s failed, will retry: %s", chat.id, error)
        await db(svc.engine, stored.release_chat, chat_id=chat.id, at=now,
                 previous=chat.weekly_brief_at)
        return 0
    return len(messages)


async def storyline(
    svc: Services, topic: weekly.TopicWeek, week: str, language: str
) -> stored.Stored | None:
    """The topic's storyline of the week in the language: read if written, else written by
    this replica once it holds the claim; None without a model or past the day's budget."""
    key: dict[str, Any] = {"query": topic.query, "week": week, "language": language}
    found = await db(svc.engine, stored.get, **key)
    if found is not None or not svc.writer.online:
        return found
    if await db(svc.engine, usage.over_budget, budget=svc.daily_token_budget):
        return None
    if not await db(svc.engine, stored.claim, lease=svc.writer.longest_write, **key):
        found = await db(svc.engine, stored.get, **key)
        if found is None:
            raise Busy(topic.query)
        return found
    try:
        stories = await db(svc.engine, weekly.with_texts,
                           stories=weekly.chosen(topic.stories), language=language)
        written = await weekly.write_storyline(svc.writer, topic.query, stories, language)
    except BaseException:
        await db(svc.engine, stored.give_up, **key)
        raise
    cited = [stored.Cited(s.story_id, s.headline, s.link) for s in stories]
    payload = written.storyline.model_dump_json() if written.storyline is not None else None
    await db(svc.engine, usage.record_calls, calls=written.calls, failures=written.failures,
             tokens_in=written.tokens_in, tokens_out=written.tokens_out)
    await db(svc.engine, stored.save, origin=written.origin, payload=payload, stories=cited,
             tokens_in=written.tokens_in, tokens_out=written.tokens_out, **key)
    return stored.Stored(written.origin, payload, cited)
