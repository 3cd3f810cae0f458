"""Once a week, the digest carries each topic's chart of the week (`/settings trend on`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from telegram.error import TelegramError
from telegram.ext import CallbackContext

from news.trend import caption, trend_chart
from services import Services
from storage import subscriptions
from storage import trend as stored
from storage.db import db
from storage.models import Chat

log = logging.getLogger(__name__)

DAYS = 7
# Digests go out at about the same time each day: a little under a week keeps the weekday.
DUE_AFTER = timedelta(days=6, hours=12)
MAX_CHARTS = 3  # one photo per topic, for the first topics only: a digest, not a flood


def weekly_due(chat: Chat, now: datetime) -> bool:
    """On, and no chart went out in the last week."""
    return chat.weekly_trend and (chat.weekly_trend_at is None
                                  or now - chat.weekly_trend_at >= DUE_AFTER)


async def send_weekly_trend(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, chat: Chat, now: datetime
) -> int:
    """After a digest went out: the week's chart of each of the chat's first topics, if due."""
    if not weekly_due(chat, now):
        return 0
    queries = [row.query for row in await db(svc.engine, subscriptions.for_chat,
                                             chat_id=chat.id)][:MAX_CHARTS]
    t = partial(svc.catalog.text, chat.language)
    sent = 0
    for query in queries:
        found = await svc.draw(partial(trend_chart, svc.engine, t, language=chat.language,
                                       timezone=chat.timezone, query=query, days=DAYS, now=now))
        if found.png is None:  # a quiet topic this week: no empty chart
            continue
        try:
            await context.bot.send_photo(
                chat.id, found.png, filename="trend.png",
                caption=caption(t, chat.language, query, DAYS, found.trend))
        except TelegramError as error:
            log.warning("weekly trend for chat %s not sent: %s", chat.id, error)
            break
        sent += 1
    await db(svc.engine, stored.mark_weekly, chat_id=chat.id, at=now)  # due again next week
    return sent
