"""Send each chat its daily digest of held stories at its chosen local time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session
from telegram.error import Forbidden, TelegramError
from telegram.ext import CallbackContext

from jobs.runtime import holds
from jobs.trend import send_weekly_trend
from news.alerts import digest_entries
from news.digest import render_digest
from news.schedule import digest_due
from services import KEY, Services
from storage import chats, deliveries
from storage.db import database_now, db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestClaim:
    """A scheduled digest this replica took (storage.chats.claim_digest), and what to restore
    if it cannot be sent."""

    at: datetime
    previous: datetime | None


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """One scheduled digest per chat and day across every replica: each is claimed before it
    is sent. A replica that dies while sending leaves its held rows for the next digest."""
    svc: Services = context.bot_data[KEY]
    if not await holds(svc.sending):
        return  # digests are paced with the alerts, by the replica that sends (jobs.deliver)
    now = await db(svc.engine, database_now)  # last_digest_at is compared by every replica
    due = [chat for chat in await db(svc.engine, deliveries.chats_with_held)
           if digest_due(deliveries.preferences(chat), chat.last_digest_at or chat.created_at,
                         now)]
    for chat in due:
        if svc.stopping.is_set():
            return
        claim = DigestClaim(await db(svc.engine, database_now), chat.last_digest_at)
        if not await db(svc.engine, chats.claim_digest, chat_id=chat.id, seen=claim.previous,
                        at=claim.at):
            continue  # another replica sends it
        if await send_digest(context, svc, chat.id, chat.language, since=None, held_only=True,
                             claim=claim):
            await send_weekly_trend(context, svc, chat, now)


async def send_digest(
    context: CallbackContext[Any, Any, Any, Any],
    svc: Services,
    chat_id: int,
    language: str,
    *,
    since: Any,
    held_only: bool,
    thread_id: int | None = None,
    claim: DigestClaim | None = None,
) -> int:
    """Send the digest messages; held rows become `digested` only once all went out. A
    scheduled digest's `claim` is given back when Telegram fails, so it is tried again."""
    now = await db(svc.engine, database_now)
    rows = await db(svc.engine, deliveries.for_digest, chat_id=chat_id, since=since,
                    held_only=held_only)
    if not rows:
        return 0
    entries = await db(svc.engine, digest_entries, language=language, rows=rows)
    header = svc.catalog.ngettext(language, "digest.header", len(entries))
    try:
        for message in render_digest(entries, header):
            await context.bot.send_message(chat_id, message, message_thread_id=thread_id)
    except Forbidden:
        await db(svc.engine, chats.deactivate, chat_id=chat_id)
        return 0
    except TelegramError as error:
        log.warning("digest for chat %s failed, will retry: %s", chat_id, error)
        if claim is not None:
            await db(svc.engine, chats.release_digest, chat_id=chat_id, at=claim.at,
                     previous=claim.previous)
        return 0
    await db(svc.engine, _digested, chat_id=chat_id, ids=[row.id for row in rows], at=now)
    return len(entries)


def _digested(*, session: Session, chat_id: int, ids: list[int], at: datetime) -> None:
    """The held rows went out in the digest, and the next digest starts from `at`."""
    deliveries.mark_digested(session=session, ids=ids)
    chats.mark_digest(session=session, chat_id=chat_id, at=at)
