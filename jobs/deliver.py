"""Send claimed deliveries side by side; every outcome is recorded on the delivery row."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Any

from sqlmodel import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError
from telegram.ext import CallbackContext

from jobs import outbound
from jobs.notify import notify_admins
from jobs.pacing import PACING, PAID_PACING, Pacing
from jobs.paid import Ledger, PaidPolicy, refused_for_stars
from jobs.recording import recording
from jobs.runtime import holds
from jobs.throttle import PerChat
from locales import Catalog
from news.alerts import Alert, render_claimed, render_delivery
from news.feedback import Rows, Translate, keyboard
from news.schedule import decide
from news.workers import Batched, drain
from services import KEY, Services
from storage import chats, deliveries, feedback
from storage import paid as paid_ledger
from storage.db import database_now, db
from telegram_link import retry_seconds

log = logging.getLogger(__name__)
SPACING = "per_chat_spacing"  # bot_data key: this application's PerChat


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """Senders take rows as claims refill them (news.workers.drain), so a fan-out never waits
    at a batch boundary for its slowest send.

    Only the replica that holds the sending role (storage.locks.Role, a PostgreSQL advisory
    lock) sends, so this process's pacing (jobs.pacing, jobs.outbound) is Telegram's
    limits for the whole deployment; the others skip. When the holder dies the role moves
    to the next replica that asks, within a tick.
    """
    svc: Services = context.bot_data[KEY]
    if await holds(svc.sending):
        # The running application's own, not a module's: two applications in one process
        # (the replica tests) must not share its asyncio locks.
        spacing = context.bot_data.setdefault(SPACING, PerChat(PACING))
        await deliver_due(context, svc, PACING, spacing)


@dataclass(frozen=True)
class Ready:
    """A claimed row rendered and due now (the chat's mode and quiet hours decided)."""

    item: deliveries.Claimed
    alert: Alert | Exception  # an alert that could not be rendered fails this row only
    claimed_at: float  # time.monotonic() before the claim: its lease runs from no earlier
    paid: bool = False  # to go with allow_paid_broadcast (jobs.paid)


def prepare(
    *, session: Session, lease: timedelta, limit: int, chat_cap: int, group_cap: int,
    catalog: Catalog, paid: PaidPolicy, allowance: int,
) -> list[Ready]:
    """One transaction per claimed batch: claim, render each message once per story,
    language, topics and level (news.alerts), hold what waits for the digest or the end of
    quiet hours, and mark up to `allowance` rows of long fan-outs to go paid."""
    started = time.monotonic()
    now = database_now(session)
    claimed = deliveries.claim(session=session, lease=lease, now=now, limit=limit,
                               chat_cap=chat_cap, group_cap=group_cap)
    alerts = render_claimed(session=session, claimed=claimed,
                            translate=lambda language: partial(catalog.text, language))
    sizes = (deliveries.fanout_sizes(session=session, story_ids={c.story_id for c in claimed})
             if allowance else {})
    ready = []
    for item, alert in zip(claimed, alerts, strict=True):
        if not isinstance(alert, Exception):
            decision = decide(item.prefs, alert.level, now)
            if decision.action != "send":
                deliveries.hold(session=session, delivery_id=item.id, token=item.token,
                                state="digest" if decision.action == "digest" else "quiet",
                                until=decision.until)
                continue
        pays = allowance > 0 and paid.worth_paying(sizes.get(item.story_id, 0))
        allowance -= pays
        ready.append(Ready(item, alert, started, pays))
    return ready


async def deliver_due(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, pacing: Pacing,
    limiter: PerChat,
) -> None:
    """One pass over what is due: edits, then sends, paced and leased as `pacing` says; a
    pass with a fan-out worth paying for (jobs.paid) goes at the paid pace instead."""
    await send_edits(context, svc, pacing, limiter)
    policy = PaidPolicy(getattr(svc, "paid_stars_per_day", 0),
                        getattr(svc, "paid_after_seconds", 60.0))
    ledger: Ledger = context.bot_data.setdefault(LEDGER, Ledger(policy))
    if policy.on:
        day = await db(svc.engine, paid_ledger.of_day)
        ledger.today(day.day, day.messages, day.refused)
        if ledger.allowance() and policy.worth_paying(
                await db(svc.engine, deliveries.largest_due)):
            pacing = PAID_PACING
    recorder = _recorder(context, svc, pacing.record_gather)
    # Rows this pass holds, by id, with their claim's current token. A row held past its
    # lease (a starved process) may be claimed again by this pass: the copy already held
    # adopts the new token and the new copy is dropped, so it is sent once, and recorded.
    tokens: dict[int, str] = {}

    async def claim() -> list[Ready]:
        while not svc.stopping.is_set():
            batch = await db(svc.engine, prepare, lease=pacing.lease, limit=pacing.queued,
                             chat_cap=pacing.cap(1), group_cap=pacing.cap(-1),
                             catalog=svc.catalog, paid=policy, allowance=ledger.allowance())
            if not batch:
                return []
            new = [ready for ready in batch if ready.item.id not in tokens]
            for ready in batch:
                tokens[ready.item.id] = ready.item.token
            ledger.outstanding += sum(ready.paid for ready in new)
            if new:
                return new
        return []

    async def handle(ready: Ready) -> None:
        """Rows still queued at shutdown are released, so a restart sends them at once."""
        item = ready.item
        try:
            if svc.stopping.is_set():
                await db(svc.engine, deliveries.release, delivery_id=item.id,
                         token=tokens.get(item.id, item.token))
                return
            if isinstance(ready.alert, Exception):
                raise ready.alert
            await deliver(context, svc, ready, pacing, limiter, recorder, tokens)
        except Exception as error:  # rendering or the database: an attempt like any other
            log.error("delivery %s to chat %s failed", item.id, item.chat_id, exc_info=error)
            await _attempt_failed(svc, replace(item, token=tokens.get(item.id, item.token)),
                                  repr(error))
        finally:
            ledger.outstanding -= ready.paid
            tokens.pop(item.id, None)

    await drain(claim, handle, workers=pacing.in_flight, queued=pacing.queued,
                name=lambda ready: f"delivery {ready.item.id} to chat {ready.item.chat_id}")


LEDGER = "paid_broadcast_ledger"  # bot_data key: this application's jobs.paid.Ledger
RECORDER = "sent_recorder"  # bot_data key: sends recorded together (mark_sent_many)


def _recorder(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, gather: float,
) -> Batched[deliveries.Sent, bool]:
    """Accepted sends are recorded together, each sender waiting for its own record: a crash
    still loses at most the sends in flight, as before, in one commit for several. One
    recorder a pace (its `record_gather`), kept by the application."""
    recorders: dict[float, Batched[deliveries.Sent, bool]] = context.bot_data.setdefault(
        RECORDER, {})
    recorder = recorders.get(gather)
    if recorder is None:
        async def record(sent: list[deliveries.Sent]) -> list[bool]:
            return await db(svc.engine, _record_sent, sent=sent)
        recorder = recorders[gather] = Batched(record, limit=1000, gather=gather)
    return recorder


def _record_sent(*, session: Session, sent: list[deliveries.Sent]) -> list[bool]:
    held = deliveries.mark_sent_many(session=session, sent=sent)
    paid_ledger.record(session=session, messages=sum(row.paid for row in sent))
    return held


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
    context: CallbackContext[Any, Any, Any, Any], svc: Services, ready: Ready,
    pacing: Pacing, limiter: PerChat, recorder: Batched[deliveries.Sent, bool],
    tokens: dict[int, str],
) -> None:
    """Send in the chat's turn, then in the overall rate's (jobs.outbound.turn). A row then
    older than its claim's lease safely covers has the lease renewed first, checking the
    claim's token; a fresh one goes at once. The chat's next turn runs from the end of the
    request: the outcome is stored after it, the record waiting for others (`settle`)."""
    item, alert = ready.item, ready.alert
    assert not isinstance(alert, Exception)
    async with recording(context.bot_data, item.id):  # a press for it waits for its record
        async with limiter(item.chat_id):
            ledger: Ledger | None = context.bot_data.get(LEDGER)
            paid = ready.paid and not (ledger is not None and ledger.refused)
            await outbound.turn(context.bot, paid=paid)
            item = replace(item, token=tokens.get(item.id, item.token))
            if time.monotonic() - ready.claimed_at > pacing.fresh:
                held = await db(svc.engine, deliveries.begin_send, delivery_id=item.id,
                                token=item.token, lease=pacing.lease)
                if not held:
                    log.info("delivery %s was claimed again while it waited; not sent here",
                             item.id)
                    return
            outcome = await request(context, svc, item, alert.html, paid=paid)
        await settle(context, svc, item, outcome, alert.sources, paid=paid, recorder=recorder,
                     tokens=tokens)


async def request(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed,
    html: str, *, paid: bool,
) -> int | Exception:
    """One message: the new message's id, or whatever went wrong (`settle` decides)."""
    t = partial(svc.catalog.text, item.language)
    try:
        return await outbound.send_alert(
            context.bot, item.chat_id, html, thread_id=item.thread_id or None,
            buttons=keyboard(item.id, 0, 0, [], t), paid=paid)
    except Exception as error:
        return error


async def settle(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed,
    outcome: int | Exception, sources: int | None, *, paid: bool,
    recorder: Batched[deliveries.Sent, bool], tokens: dict[int, str],
) -> None:
    """Telegram's answer to a send decides whether the row is sent, retried or parked.
    Whatever else went wrong (an answer that cannot be read, a bug) is a failed attempt.
    `sources`: how many the message lists (a source joining meanwhile calls for an edit).
    `paid`: with allow_paid_broadcast; refused for want of Stars, the row goes again free."""
    item = replace(item, token=tokens.get(item.id, item.token))  # re-claimed meanwhile?
    try:
        if isinstance(outcome, Exception):
            raise outcome
        message_id = outcome
    except Forbidden as error:
        log.info("chat %s blocked or removed the bot: %s", item.chat_id, error)
        await db(svc.engine, _blocked, item=item, error=str(error))
        return
    except ChatMigrated as error:
        log.info("chat %s is now %s; resending there", item.chat_id, error.new_chat_id)
        await db(svc.engine, _migrated, item=item, new_id=error.new_chat_id)
        return
    except RetryAfter as error:
        seconds = retry_seconds(error)
        log.warning("delivery %s to chat %s will be retried: %s", item.id, item.chat_id, error)
        if await db(svc.engine, deliveries.throttled, delivery_id=item.id, token=item.token,
                    after=timedelta(seconds=seconds), error=str(error)):
            log.error("delivery %s parked: throttled for over %s", item.id,
                      deliveries.MAX_THROTTLED)
        return
    except BadRequest as error:
        if paid and refused_for_stars(str(error)):
            await _refused(context, svc, item, str(error))
            return
        log.error("delivery %s rejected by Telegram: %s", item.id, error)
        await db(svc.engine, deliveries.mark_failed, delivery_id=item.id, token=item.token,
                 code="rejected", error=str(error))
        return
    except Exception as error:  # 5xx and timeouts (NetworkError), unreadable answers, bugs
        reason = str(error) if isinstance(error, TelegramError) else repr(error)
        await _attempt_failed(svc, item, reason)
        return
    sent = deliveries.Sent(item.id, item.token, message_id, sources, paid)
    held = await recorder(sent)
    if paid and (ledger := context.bot_data.get(LEDGER)) is not None:
        ledger.spent += 1  # recorded (held or not, Telegram took the Stars)
    if not held:
        log.warning("delivery %s was sent after another claim took it", item.id)


async def _refused(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, item: deliveries.Claimed,
    error: str,
) -> None:
    """Telegram wants more Stars than the bot has: no paid sends more today (every replica
    reads the day's record), this row goes again at the free rate, admins hear of it once."""
    ledger: Ledger | None = context.bot_data.get(LEDGER)
    if ledger is not None:
        ledger.refused = True
    first = await db(svc.engine, paid_ledger.refuse)
    await db(svc.engine, deliveries.release, delivery_id=item.id, token=item.token)
    if first:
        log.warning("paid broadcast refused by Telegram (%s): free rate until midnight UTC",
                    error)
        await notify_admins(context, svc, lambda language: svc.catalog.text(
            language, "paid.refused"))


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
    alert = await db(svc.engine, render_delivery, claimed=item, t=t)
    buttons = await db(svc.engine, alert_keyboard, delivery_id=item.id, t=t)
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


def alert_keyboard(*, session: Session, delivery_id: int, t: Translate) -> Rows:
    """An alert's keyboard as it stands: its votes and the choices 👎 offered."""
    up, down, offered = feedback.keyboard_state(session=session, delivery_id=delivery_id)
    return keyboard(delivery_id, up, down, offered, t)
