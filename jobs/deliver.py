"""Send claimed deliveries side by side; every outcome is recorded on the delivery row."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta
from functools import partial
from typing import Any

from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import CallbackContext

from jobs.throttle import PerChat
from news.pipeline import render_delivery
from news.schedule import decide
from news.workers import drain
from services import KEY, Services
from storage import chats, deliveries
from storage.db import session_scope
from storage.models import utcnow

log = logging.getLogger(__name__)
IN_FLIGHT = 32  # enough parallel sends to reach ~30/s over a real network
QUEUED = 64  # claimed rows waiting for a sender; at 30/s about two seconds of work
per_chat = PerChat()


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """Senders take rows as claims refill them (news.workers.drain), so a fan-out never waits
    at a batch boundary for its slowest send."""
    svc: Services = context.bot_data[KEY]
    await send_edits(context, svc)

    async def claim() -> list[deliveries.Claimed]:
        if svc.stopping.is_set():
            return []
        with session_scope(svc.engine) as session:
            return deliveries.claim(session=session, now=utcnow(), limit=QUEUED)

    async def handle(item: deliveries.Claimed) -> None:
        """Rows still queued at shutdown are released, so a restart sends them at once."""
        if svc.stopping.is_set():
            with session_scope(svc.engine) as session:
                deliveries.release(session=session, ids=[item.id])
        else:
            await deliver(context, svc, item)

    await drain(claim, handle, workers=IN_FLIGHT, queued=QUEUED,
                name=lambda item: f"delivery {item.id} to chat {item.chat_id}")


async def send_edits(context: CallbackContext[Any, Any, Any, Any], svc: Services) -> None:
    with session_scope(svc.engine) as session:
        edits = deliveries.claim_edits(session=session, now=utcnow())
    for item in edits:
        if not svc.stopping.is_set():
            async with per_chat(item.chat_id):
                await edit(context, svc, item)


async def deliver(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed
) -> None:
    """Send now, or hold for the digest or until quiet hours end, as the chat's mode says."""
    t = partial(svc.catalog.text, item.language)
    alert = await asyncio.to_thread(render_delivery, svc.engine, item, t)
    decision = decide(item.prefs, alert.level, utcnow())
    if decision.action != "send":
        state = "digest" if decision.action == "digest" else "quiet"
        with session_scope(svc.engine) as session:
            deliveries.hold(session=session, delivery_id=item.id, state=state,
                            until=decision.until)
        return
    async with per_chat(item.chat_id):
        await send(context, svc, item, alert.html)


async def send(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed,
    html: str,
) -> None:
    """One message; Telegram's answer decides whether the row is sent, retried or parked."""
    try:
        message = await context.bot.send_message(
            item.chat_id, html, parse_mode=ParseMode.HTML,
            message_thread_id=item.thread_id or None,
            link_preview_options=LinkPreviewOptions(is_disabled=True))
    except Forbidden as error:
        log.info("chat %s blocked or removed the bot: %s", item.chat_id, error)
        with session_scope(svc.engine) as session:
            chats.deactivate(session=session, chat_id=item.chat_id)
            deliveries.mark_failed(session=session, delivery_id=item.id, error=str(error))
        return
    except ChatMigrated as error:
        log.info("chat %s is now %s; resending there", item.chat_id, error.new_chat_id)
        with session_scope(svc.engine) as session:
            chats.migrate(session=session, old_id=item.chat_id, new_id=error.new_chat_id)
            deliveries.release(session=session, ids=[item.id])
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
    except (TimedOut, NetworkError) as error:  # 5xx arrive as NetworkError
        backoff = min(300.0, 2.0 ** item.attempts) * random.uniform(0.5, 1.5)
        _retry(svc, item, timedelta(seconds=backoff), str(error))
        return
    with session_scope(svc.engine) as session:
        deliveries.mark_sent(session=session, delivery_id=item.id, message_id=message.message_id)


async def edit(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed
) -> None:
    """A source joined a story already sent: the message is edited to list it, not re-sent."""
    t = partial(svc.catalog.text, item.language)
    alert = await asyncio.to_thread(render_delivery, svc.engine, item, t)
    try:
        await context.bot.edit_message_text(
            alert.html, chat_id=item.chat_id, message_id=item.message_id,
            parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))
    except BadRequest as error:
        if "not modified" not in str(error).lower():
            log.warning("edit of delivery %s refused: %s", item.id, error)
    except Forbidden:
        with session_scope(svc.engine) as session:
            chats.deactivate(session=session, chat_id=item.chat_id)
    except TelegramError as error:
        log.warning("edit of delivery %s will be retried: %s", item.id, error)
        return  # the lease expires and the edit is claimed again
    with session_scope(svc.engine) as session:
        deliveries.edited(session=session, delivery_id=item.id)


def _retry(svc: Services, item: deliveries.Claimed, after: timedelta, error: str) -> None:
    log.warning("delivery %s to chat %s will be retried: %s", item.id, item.chat_id, error)
    with session_scope(svc.engine) as session:
        deliveries.retry_later(session=session, delivery_id=item.id, after=after, error=error)
