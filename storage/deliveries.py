"""The outbox: deliveries are written before sending, claimed with a lease, then marked."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from news.schedule import Preferences
from storage.models import Brief, Chat, Delivery, Story, Subscription, utcnow

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Claimed:
    """A delivery to send now, with what rendering needs of its chat."""

    id: int
    chat_id: int
    thread_id: int
    story_id: int
    language: str
    topics: list[str]
    attempts: int
    prefs: Preferences
    message_id: int | None = None


def enqueue_matches(*, session: Session, matches: Mapping[int, Collection[int]]) -> int:
    """Rows for the subscriptions each story (key) matched. Their chats are read here, in the
    ingest's transaction: a cached matcher may predate a chat's migration or removal, so the
    subscription's current chat and forum topic get the row, and inactive chats none."""
    wanted = sorted(set().union(*matches.values())) if matches else []
    found: dict[int, tuple[int, int, str]] = {}
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        statement = (
            select(Subscription.id, Subscription.chat_id, Subscription.thread_id,
                   Subscription.query)
            .join(Chat, col(Chat.id) == Subscription.chat_id)
            .where(col(Subscription.id).in_(wanted[start:start + _IDS_PER_QUERY]), Chat.active)
        )
        for sub_id, chat_id, thread_id, query in session.exec(statement).all():
            found[sub_id or 0] = (chat_id, thread_id, query)
    rows = []
    for story_id, sub_ids in matches.items():
        targets: dict[tuple[int, int], list[str]] = {}
        for sub_id in sorted(sub_ids):
            if sub_id in found:
                chat_id, thread_id, query = found[sub_id]
                targets.setdefault((chat_id, thread_id), []).append(query)
        rows += [(story_id, chat_id, thread_id, topics)
                 for (chat_id, thread_id), topics in targets.items()]
    return _insert(session, rows)


_IDS_PER_QUERY = 5000  # well under SQLite's limit on bound parameters


def _insert(session: Session, targets: list[tuple[int, int, int, list[str]]]) -> int:
    """(story, chat, thread, topics) rows as one multi-row INSERT … ON CONFLICT DO NOTHING:
    a fan-out to thousands of chats is one statement, not thousands of savepoints."""
    if not targets:
        return 0
    now = utcnow()
    rows = [{"chat_id": chat_id, "thread_id": thread_id, "story_id": story_id,
             "topics": json.dumps(topics, ensure_ascii=False), "state": "pending",
             "attempts": 0, "next_attempt_at": now, "created_at": now}
            for story_id, chat_id, thread_id, topics in targets]
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    result = session.execute(insert(Delivery).on_conflict_do_nothing(), rows)
    return int(getattr(result, "rowcount", 0) or 0)


# States: pending (to send), quiet (waiting out quiet hours), digest (held for the digest),
# sent, digested (went out in a digest), failed (parked after errors).
HELD = ("quiet", "digest")


def _pending(now: datetime, states: tuple[str, ...] = ("pending",)) -> list[Any]:
    return [col(Delivery.state).in_(states), col(Delivery.next_attempt_at) <= now, Chat.active]


def preferences(chat: Chat) -> Preferences:
    return Preferences(chat.mode, chat.digest_time, chat.timezone, chat.quiet_start,
                       chat.quiet_end)


def briefs_missing(*, session: Session, now: datetime, limit: int = 20) -> list[tuple[int, str]]:
    """(story, language) pairs that due deliveries wait on, so each brief is written once."""
    statement = (
        select(Delivery.story_id, Chat.language)
        .join(Chat, col(Chat.id) == Delivery.chat_id)
        .outerjoin(Brief, and_(col(Brief.story_id) == Delivery.story_id,
                               col(Brief.language) == Chat.language))
        .where(*_pending(now), col(Brief.id).is_(None))
        .distinct()
        .limit(limit)
    )
    return [(story_id, language) for story_id, language in session.exec(statement).all()]


def claim(*, session: Session, now: datetime, limit: int = 30) -> list[Claimed]:
    """Claim due deliveries whose brief exists; the lease makes a crashed claim retry later."""
    statement = (
        select(Delivery, Chat)
        .join(Chat, col(Chat.id) == Delivery.chat_id)
        .join(Brief, and_(col(Brief.story_id) == Delivery.story_id,
                          col(Brief.language) == Chat.language))
        .where(*_pending(now, ("pending", "quiet")))
        .order_by(col(Delivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    claimed = []
    for delivery, chat in session.exec(statement).all():
        delivery.next_attempt_at = now + LEASE
        delivery.attempts += 1
        claimed.append(_claimed(delivery, chat))
    return claimed


def _claimed(delivery: Delivery, chat: Chat) -> Claimed:
    return Claimed(delivery.id or 0, delivery.chat_id, delivery.thread_id, delivery.story_id,
                   chat.language, json.loads(delivery.topics), delivery.attempts,
                   preferences(chat), delivery.message_id)


def mark_sent(*, session: Session, delivery_id: int, message_id: int) -> None:
    delivery = session.get(Delivery, delivery_id)
    if delivery is not None:
        delivery.state, delivery.message_id, delivery.sent_at = "sent", message_id, utcnow()
        delivery.next_attempt_at = delivery.sent_at  # the lease ends: edits may claim it


def retry_later(*, session: Session, delivery_id: int, after: timedelta, error: str) -> None:
    """Back off this row; after MAX_ATTEMPTS it is parked as failed rather than retried forever."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return
    delivery.last_error = error[:500]
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.state = "failed"
    else:
        delivery.next_attempt_at = utcnow() + after


def mark_failed(*, session: Session, delivery_id: int, error: str) -> None:
    delivery = session.get(Delivery, delivery_id)
    if delivery is not None:
        delivery.state, delivery.last_error = "failed", error[:500]


def count_sent_since(*, session: Session, since: datetime) -> int:
    statement = select(func.count()).select_from(Delivery).where(
        Delivery.state == "sent", col(Delivery.sent_at) >= since)
    return int(session.exec(statement).one())


def release(*, session: Session, ids: list[int]) -> None:
    """Give back claimed rows that were not sent, so a restart sends them at once."""
    for delivery_id in ids:
        delivery = session.get(Delivery, delivery_id)
        if delivery is not None and delivery.state == "pending":
            delivery.next_attempt_at = utcnow()
            delivery.attempts = max(0, delivery.attempts - 1)


def hold(*, session: Session, delivery_id: int, state: str, until: datetime | None = None) -> None:
    """Keep a claimed row back: for the digest, or (`quiet`) until quiet hours end."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is not None and delivery.state in ("pending", "quiet"):
        delivery.state = state
        delivery.attempts = max(0, delivery.attempts - 1)
        delivery.next_attempt_at = until or utcnow()


@dataclass(frozen=True)
class DigestRow:
    """A delivery as a digest line needs it."""

    id: int
    story_id: int
    title: str
    topics: list[str]
    state: str
    created_at: datetime


def chats_with_held(*, session: Session) -> list[Chat]:
    """Active chats that have stories waiting for their digest."""
    statement = (
        select(Chat).where(Chat.active, col(Chat.id).in_(
            select(Delivery.chat_id).where(col(Delivery.state).in_(HELD))))
    )
    return list(session.exec(statement).all())


def for_digest(
    *, session: Session, chat_id: int, since: datetime | None, held_only: bool
) -> list[DigestRow]:
    """The chat's held rows (scheduled digest) or everything matched since `since` (/digest)."""
    statement = (
        select(Delivery, Story.title)
        .join(Story, col(Story.id) == Delivery.story_id)
        .where(Delivery.chat_id == chat_id, col(Delivery.state) != "failed")
        .order_by(col(Delivery.created_at))
    )
    if held_only:
        statement = statement.where(col(Delivery.state).in_(HELD))
    if since is not None:
        statement = statement.where(col(Delivery.created_at) >= since)
    return [DigestRow(row.id or 0, row.story_id, title, json.loads(row.topics), row.state,
                      row.created_at) for row, title in session.exec(statement).all()]


def mark_digested(*, session: Session, ids: list[int]) -> None:
    """Held rows that went out in a digest are done; sent rows stay sent."""
    for delivery_id in ids:
        delivery = session.get(Delivery, delivery_id)
        if delivery is not None and delivery.state in HELD:
            delivery.state, delivery.sent_at = "digested", utcnow()


def flag_edits(*, session: Session, story_ids: set[int]) -> None:
    """New sources joined these stories: their sent messages are edited to list them."""
    session.execute(
        update(Delivery)
        .where(col(Delivery.story_id).in_(story_ids), col(Delivery.state) == "sent",
               col(Delivery.message_id).is_not(None))
        .values(needs_edit=True)
    )


def claim_edits(*, session: Session, now: datetime, limit: int = 50) -> list[Claimed]:
    """Sent messages waiting for an edit, claimed like sends (leased, SKIP LOCKED)."""
    statement = (
        select(Delivery, Chat)
        .join(Chat, col(Chat.id) == Delivery.chat_id)
        .where(col(Delivery.needs_edit).is_(True), Chat.active,
               col(Delivery.next_attempt_at) <= now)
        .order_by(col(Delivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    claimed = []
    for delivery, chat in session.exec(statement).all():
        delivery.next_attempt_at = now + LEASE
        claimed.append(_claimed(delivery, chat))
    return claimed


def edited(*, session: Session, delivery_id: int) -> None:
    delivery = session.get(Delivery, delivery_id)
    if delivery is not None:
        delivery.needs_edit = False
        delivery.next_attempt_at = utcnow()


def release_stale_leases(*, session: Session) -> int:
    """On SQLite only one process runs, so at start-up every lease is from a dead process."""
    now = utcnow()
    result = session.execute(
        update(Delivery)
        .where(col(Delivery.state).in_(("pending", "quiet")), col(Delivery.attempts) > 0,
               col(Delivery.next_attempt_at) > now, col(Delivery.last_error).is_(None))
        .values(next_attempt_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
