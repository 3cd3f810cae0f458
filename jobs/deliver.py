"""Send claimed deliveries side by side; every outcome is recorded on the delivery row."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError
from telegram.ext import CallbackContext

from jobs.pacing import PACING, Pacing
from jobs.recording import recording
from jobs.throttle import PerChat
from news.alerts import render_delivery
from news.feedback import Rows, Translate, keyboard
from news.schedule import decide
from news.workers import drain
from services import KEY, Services
from storage import chats, deliveries, feedback
from storage.db import database_now, db, session_scope

log = logging.getLogger(__name__)
SPACING = "per_chat_spacing"  # bot_data key: this application's PerChat


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """Senders take rows as claims refill them (news.workers.drain), so a fan-out never waits
    at a batch boundary for its slowest send.

    Only the replica that holds the sending role (storage.locks.Role, a PostgreSQL advisory
    lock) sends, so this process's pacing (jobs.pacing, PTB's rate limiter) is Telegram's
    limits for the whole deployment; the others skip. When the holder dies the role moves
    to the next replica that asks, within a tick.
    """
    svc: Services = context.bot_data[KEY]
    if await asyncio.to_thread(svc.sending.held):
        # The running application's own, not a module's: two applications in one process
        # (the replica tests) must not share its asyncio locks.
        spacing = context.bot_data.setdefault(SPACING, PerChat(PACING))
        await deliver_due(context, svc, PACING, spacing)


async def deliver_due(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, pacing: Pacing,
    limiter: PerChat,
) -> None:
    """One pass over what is due: edits, then sends, paced and leased as `pacing` says."""
    await send_edits(context, svc, pacing, limiter)

    async def claim() -> list[deliveries.Claimed]:
        if svc.stopping.is_set():
            return []
        return await db(svc.engine, deliveries.claim, lease=pacing.lease,
                        limit=pacing.queued, chat_cap=pacing.cap(1), group_cap=pacing.cap(-1))

    async def handle(item: deliveries.Claimed) -> None:
        """Rows still queued at shutdown are released, so a restart sends them at once."""
        if svc.stopping.is_set():
            await db(svc.engine, deliveries.release, delivery_id=item.id, token=item.token)
            return
        try:
            await deliver(context, svc, item, pacing, limiter)
        except Exception as error:  # rendering or the database: an attempt like any other
            log.exception("delivery %s to chat %s failed", item.id, item.chat_id)
            await _attempt_failed(svc, item, repr(error))

    await drain(claim, handle, workers=pacing.in_flight, queued=pacing.queued,
                name=lambda item: f"delivery {item.id} to chat {item.chat_id}")


async def send_edits(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, pacing: Pacing,
    limiter: PerChat,
) -> None:
    edits = await db(svc.engine, deliveries.claim_edits, lease=pacing.lease)
    for item in edits:
        if not svc.stopping.is_set():
            async with limiter(item.chat_id):
                await edit(context, svc, item)


async def deliver(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed,
    pacing: Pacing, limiter: PerChat,
) -> None:
    """Send now, or hold for the digest or until quiet hours end, as the chat's mode says."""
    t = partial(svc.catalog.text, item.language)
    alert = await asyncio.to_thread(render_delivery, svc.engine, item, t)
    # Quiet hours end at a time written for every replica to compare: the database's clock.
    decision = decide(item.prefs, alert.level, await db(svc.engine, database_now))
    if decision.action != "send":
        state = "digest" if decision.action == "digest" else "quiet"
        await db(svc.engine, deliveries.hold, delivery_id=item.id, token=item.token,
                 state=state, until=decision.until)
        return
    async with limiter(item.chat_id):
        held = await db(svc.engine, deliveries.begin_send, delivery_id=item.id,
                        token=item.token, lease=pacing.lease)
        if not held:
            log.info("delivery %s was claimed again while it waited; not sent here", item.id)
            return
        async with recording(context.bot_data, item.id):  # a press meanwhile waits for it
            await send(context, svc, item, alert.html, alert.sources)


async def send(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed,
    html: str, sources: int | None = None,
) -> None:
    """One message; Telegram's answer decides whether the row is sent, retried or parked.
    Whatever else goes wrong (an answer that cannot be read, a bug) is a failed attempt.
    `sources`: how many the message lists (a source joining meanwhile calls for an edit)."""
    try:
        t = partial(svc.catalog.text, item.language)
        message = await context.bot.send_message(
            item.chat_id, html, message_thread_id=item.thread_id or None,
            reply_markup=markup(keyboard(item.id, 0, 0, [], t)))
        message_id = message.message_id
    except Forbidden as error:
        log.info("chat %s blocked or removed the bot: %s", item.chat_id, error)
        await db(svc.engine, _blocked, item=item, error=str(error))
        return
    except ChatMigrated as error:
        log.info("chat %s is now %s; resending there", item.chat_id, error.new_chat_id)
        await db(svc.engine, _migrated, item=item, new_id=error.new_chat_id)
        return
    except RetryAfter as error:
        after = error.retry_after
        seconds = after.total_seconds() if isinstance(after, timedelta) else float(after)
        log.warning("delivery %s to chat %s will be retried: %s", item.id, item.chat_id, error)
        if await db(svc.engine, deliveries.throttled, delivery_id=item.id, token=item.token,
                    after=timedelta(seconds=seconds), error=str(error)):
            log.error("delivery %s parked: throttled for over %s", item.id,
                      deliveries.MAX_THROTTLED)
        return
    except BadRequest as error:
        log.error("delivery %s rejected by Telegram: %s", item.id, error)
        await db(svc.engine, deliveries.mark_failed, delivery_id=item.id, token=item.token,
                 code="rejected", error=str(error))
        return
    except Exception as error:  # 5xx and timeouts (NetworkError), unreadable answers, bugs
        reason = str(error) if isinstance(error, TelegramError) else repr(error)
        await _attempt_failed(svc, item, reason)
        return
    if not await db(svc.engine, deliveries.mark_sent, delivery_id=item.id, token=item.token,
                    message_id=message_id, sources=sources):
        log.warning("delivery %s was sent after another claim took it", item.id)


def _blocked(*, session: Session, item: deliveries.Claimed, error: str) -> None:
    """The chat blocked or removed the bot: it receives nothing more, this row included."""
    chats.deactivate(session=session, chat_id=item.chat_id)
    deliveries.mark_failed(session=session, delivery_id=item.id, token=item.token,
                           code="blocked", error=error)


def _migrated(*, session: Session, item: deliveries.Claimed, new_id: int) -> None:
    """The group is a supergroup now: the row, released, goes to the new id with the rest."""
    chats.migrate(session=session, old_id=item.chat_id, new_id=new_id)
    deliveries.release(session=session, delivery_id=item.id, token=item.token)


async def _attempt_failed(svc: Services, item: deliveries.Claimed, error: str) -> None:
    backoff = min(300.0, 2.0 ** item.attempts) * random.uniform(0.5, 1.5)
    parked = await db(svc.engine, deliveries.failed_attempt, delivery_id=item.id,
                      token=item.token, after=timedelta(seconds=backoff), error=error)
    if parked:
        log.error("delivery %s to chat %s parked after %d failed attempts: %s", item.id,
                  item.chat_id, deliveries.MAX_ATTEMPTS, error)
    else:
        log.warning("delivery %s to chat %s will be retried: %s", item.id, item.chat_id, error)


async def edit(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed
) -> None:
    """A source joined a story already sent: the message is edited to list it, not re-sent."""
    t = partial(svc.catalog.text, item.language)
    alert = await asyncio.to_thread(render_delivery, svc.engine, item, t)
    buttons = await asyncio.to_thread(alert_keyboard, svc.engine, item.id, t)
    shows: int | None = alert.sources  # None: the message cannot be edited; never try again
    try:
        await context.bot.edit_message_text(  # an edit without the keyboard would drop it
            alert.html, chat_id=item.chat_id, message_id=item.message_id,
            reply_markup=markup(buttons))
    except BadRequest as error:
        if "not modified" not in str(error).lower():
            log.warning("edit of delivery %s refused: %s", item.id, error)
            shows = None
    except Forbidden:
        shows = None
        await db(svc.engine, chats.deactivate, chat_id=item.chat_id)
    except TelegramError as error:
        log.warning("edit of delivery %s will be retried: %s", item.id, error)
        return  # the lease expires and the edit is claimed again
    # A source that joined while this edit was on its way calls for another one.
    await db(svc.engine, deliveries.edited, delivery_id=item.id, sources=shows)


def markup(rows: Rows) -> InlineKeyboardMarkup:
    """Keyboard rows of (label, callback data) as Telegram takes them."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)
                                  for label, data in row] for row in rows])


def alert_keyboard(engine: Engine, delivery_id: int, t: Translate) -> Rows:
    """An alert's keyboard as it stands: its votes and the choices 👎 offered."""
    with session_scope(engine) as session:
        up, down, offered = feedback.keyboard_state(session=session, delivery_id=delivery_id)
    return keyboard(delivery_id, up, down, offered, t)
