"""Send claimed deliveries; every outcome is recorded on the delivery row."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial
from typing import Any

from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import CallbackContext

from news.pipeline import render_delivery
from services import KEY, Services
from storage import chats, deliveries
from storage.db import session_scope
from storage.models import utcnow

log = logging.getLogger(__name__)


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    with session_scope(svc.engine) as session:
        claimed = deliveries.claim(session=session, now=utcnow())
    for index, item in enumerate(claimed):
        if svc.stopping.is_set():
            with session_scope(svc.engine) as session:
                deliveries.release(session=session, ids=[c.id for c in claimed[index:]])
            return
        await send(context, svc, item)


async def send(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed
) -> None:
    """One message; Telegram's answer decides whether the row is sent, retried or parked."""
    t = partial(svc.catalog.text, item.language)
    html = await asyncio.to_thread(render_delivery, svc.engine, item, t)
    try:
        message = await context.bot.send_message(
            item.chat_id, html, parse_mode=ParseMode.HTML,
            message_thread_id=item.thread_id or None,
            link_preview_options=LinkPreviewOptions(is_disabled=True))
    except Forbidden as error:
        with session_scope(svc.engine) as session:
            chats.deactivate(session=session, chat_id=item.chat_id)
            deliveries.mark_failed(session=session, delivery_id=item.id, error=str(error))
        return
    except RetryAfter as error:
        after = error.retry_after
        seconds = after.total_seconds() if isinstance(after, timedelta) else float(after)
        _retry(svc, item, timedelta(seconds=seconds), str(error))
        return
    except BadRequest as error:
        log.error("delivery %s rejected by Telegram: %s", item.id, error)
        with session_scope(svc.engine) as session:
            deliveries.mark_failed(session=session, delivery_id=item.id, error=str(error))
        return
    except (TimedOut, NetworkError) as error:
        _retry(svc, item, timedelta(seconds=2 ** item.attempts), str(error))
        return
    with session_scope(svc.engine) as session:
        deliveries.mark_sent(session=session, delivery_id=item.id, message_id=message.message_id)


def _retry(svc: Services, item: deliveries.Claimed, after: timedelta, error: str) -> None:
    log.warning("delivery %s to chat %s will be retried: %s", item.id, item.chat_id, error)
    with session_scope(svc.engine) as session:
        deliveries.retry_later(session=session, delivery_id=item.id, after=after, error=error)
