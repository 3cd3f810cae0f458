"""The outbox: deliveries are written before sending, claimed with a lease, then marked."""

from __future__ import annotations

import heapq
import itertools
import json
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from news.types import Preferences
from storage import errors, feedback
from storage.db import database_now
from storage.errors import StoredError
from storage.models import Brief, BriefClaim, Chat, Delivery, Item, Story, Subscription

MAX_ATTEMPTS = 5  # sends that failed, whatever the cause, before a row is parked as failed
MAX_THROTTLED = timedelta(hours=1)  # 429 waits on one row before it is parked


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
    token: str = ""  # this claim's; only its holder may send the row or record the outcome


def enqueue_matches(*, session: Session, matches: Mapping[int, Collection[int]]) -> int:
    """Rows for the subscriptions each story (key) matched. Their chats are read here, in the
    ingest's transaction: a cached matcher may predate a chat's migration or removal, so the
    subscription's current chat and forum topic get the row, and inactive chats none. A topic
    that muted the story's source (feedback) gets none either."""
    matches = feedback.unmuted(session=session, matches=matches)
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
    now = database_now(session)
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


def briefs_missing(
    *, session: Session, now: datetime | None = None, limit: int = 20,
) -> list[tuple[int, str]]:
    """(story, language) pairs that due deliveries wait on, so each brief is written once;
    pairs another writer holds (storage.briefs.claim) are left to it. `now`: the database's."""
    now = now or database_now(session)
    statement = (
        select(Delivery.story_id, Chat.language)
        .join(Chat, col(Chat.id) == Delivery.chat_id)
        .outerjoin(Brief, and_(col(Brief.story_id) == Delivery.story_id,
                               col(Brief.language) == Chat.language))
        .outerjoin(BriefClaim, and_(col(BriefClaim.story_id) == Delivery.story_id,
                                    col(BriefClaim.language) == Chat.language,
                                    col(BriefClaim.claimed_until) > now))
        .where(*_pending(now), col(Brief.id).is_(None), col(BriefClaim.story_id).is_(None))
        .distinct()
        .limit(limit)
    )
    return [(story_id, language) for story_id, language in session.exec(statement).all()]


CLAIMABLE = ("pending", "quiet")  # quiet rows are claimed again when quiet hours end


def claim(
    *, session: Session, lease: timedelta, now: datetime | None = None, limit: int = 30,
    chat_cap: int = 1_000_000, group_cap: int = 1_000_000,
) -> list[Claimed]:
    """Claim due deliveries whose brief exists, each leased under this claim's token. A chat
    gets no more rows than its cap (groups: negative ids) counting those still leased, so the
    rows one claim takes can all be paced out before their lease ends (jobs.pacing). Due
    and leased by the database's clock (`now`, unless a test fixes it), as every replica.

    The due rows are read in id order a page at a time (_due) and ranked per chat as they
    come, so a claim reads about as many rows as it takes, not every row waiting: ranking
    them all in SQL cost 80 ms a claim with 30,000 waiting, more than the sends it fed."""
    now = now or database_now(session)
    ranked: dict[int, int] = {}  # chat -> its leased rows plus its due rows read so far
    picked: list[int] = []
    due = _due(session, now)
    while len(picked) < limit and (rows := list(itertools.islice(due, limit))):
        ranked |= _leased(session, {chat for _, chat in rows if chat not in ranked}, now)
        for delivery_id, chat_id in rows:
            ranked[chat_id] += 1
            if ranked[chat_id] <= (group_cap if chat_id < 0 else chat_cap):
                picked.append(delivery_id)
                if len(picked) == limit:
                    break
    if not picked:
        return []
    # Columns, not ORM objects, and one UPDATE for the batch: at 1,000 sends a second the
    # objects' loading and per-row flush were a tenth of the bot's CPU.
    statement = (
        sa_select(*map(col, (
            Delivery.id, Delivery.chat_id, Delivery.thread_id, Delivery.story_id, Chat.language,
            Delivery.topics, Delivery.attempts, Chat.mode, Chat.digest_time, Chat.timezone,
            Chat.quiet_start, Chat.quiet_end, Delivery.message_id)))
        .join(Chat, col(Chat.id) == Delivery.chat_id)
        .where(col(Delivery.id).in_(picked), *_pending(now, CLAIMABLE))
        .order_by(col(Delivery.id))
        .with_for_update(skip_locked=True, of=Delivery)
    )
    found = session.execute(statement).all()
    if not found:
        return []
    token = uuid.uuid4().hex  # one per claim: a later claim of a row gives it another
    session.execute(update(Delivery).where(col(Delivery.id).in_([row[0] for row in found]))
                    .values(next_attempt_at=now + lease, claim_token=token),
                    execution_options={"synchronize_session": False})
    return [Claimed(id or 0, chat_id, thread_id, story_id, language, json.loads(topics),
                    attempts, Preferences(mode, digest_time, timezone, quiet_start, quiet_end),
                    message_id, token)
            for (id, chat_id, thread_id, story_id, language, topics, attempts, mode,
                 digest_time, timezone, quiet_start, quiet_end, message_id) in found]


_DUE_PAGE = 128  # rows a claim reads at a time: two claims of 64 with none held back


def _due(session: Session, now: datetime) -> Iterator[tuple[int, int]]:
    """(delivery, chat) of the rows due now with a brief, in id order across the claimable
    states: each state walks the (state, id) index from where its last page ended."""
    def pages(state: str) -> Iterator[tuple[int, int]]:
        after = 0
        while True:
            page = session.exec(
                select(Delivery.id, Delivery.chat_id)
                .join(Chat, col(Chat.id) == Delivery.chat_id)
                .join(Brief, and_(col(Brief.story_id) == Delivery.story_id,
                                  col(Brief.language) == Chat.language))
                .where(col(Delivery.state) == state, col(Delivery.id) > after,
                       col(Delivery.next_attempt_at) <= now, Chat.active)
                .order_by(col(Delivery.id)).limit(_DUE_PAGE)).all()
            for delivery_id, chat_id in page:
                yield delivery_id or 0, chat_id
            if len(page) < _DUE_PAGE:
                return
            after = page[-1][0] or 0

    return heapq.merge(*(pages(state) for state in CLAIMABLE))


def _leased(session: Session, chat_ids: set[int], now: datetime) -> dict[int, int]:
    """Each chat's rows another claim still holds: they count against its cap."""
    held = dict.fromkeys(chat_ids, 0)
    if chat_ids:
        held |= dict(session.exec(
            select(Delivery.chat_id, func.count())
            .where(col(Delivery.chat_id).in_(chat_ids), col(Delivery.state).in_(CLAIMABLE),
                   col(Delivery.claim_token).is_not(None), col(Delivery.next_attempt_at) > now)
            .group_by(col(Delivery.chat_id))).all())
    return held


def _claimed(delivery: Delivery, chat: Chat) -> Claimed:
    return Claimed(delivery.id or 0, delivery.chat_id, delivery.thread_id, delivery.story_id,
                   chat.language, json.loads(delivery.topics), delivery.attempts,
                   preferences(chat), delivery.message_id, delivery.claim_token or "")


def _held(session: Session, delivery_id: int, token: str) -> Delivery | None:
    """The row, locked, if this claim still holds it; None when another claim took it since."""
    statement = (
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.claim_token == token)
        .with_for_update()
    )
    return session.exec(statement).first()


def begin_send(*, session: Session, delivery_id: int, token: str, lease: timedelta) -> bool:
    """Renew the lease just before sending; False when the claim is stale (another claim
    took the row after its lease ran out), and then the row must not be sent."""
    result = session.execute(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.claim_token) == token,
               col(Delivery.state).in_(CLAIMABLE))
        .values(next_attempt_at=database_now(session) + lease)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def mark_sent(
    *, session: Session, delivery_id: int, token: str, message_id: int,
    sources: int | None = None,
) -> bool:
    """Done; nothing happens (False) when the claim is stale. `sources`: how many the message
    listed; when the story has more by now (one joined while it was being sent), the message
    is flagged for an edit (_outdated)."""
    delivery = _held(session, delivery_id, token)
    if delivery is None:
        return False
    delivery.state, delivery.message_id = "sent", message_id
    delivery.sent_at = database_now(session)
    delivery.next_attempt_at = delivery.sent_at  # the lease ends: edits may claim it
    delivery.claim_token = None
    if sources is not None:
        delivery.needs_edit = _outdated(session, delivery, sources)
    return True


@dataclass(frozen=True)
class Sent:
    """A send Telegram accepted, to be recorded with others in one transaction."""

    delivery_id: int
    token: str
    message_id: int
    sources: int | None = None
    paid: bool = False  # sent with allow_paid_broadcast


def mark_sent_many(*, session: Session, sent: Sequence[Sent]) -> list[bool]:
    """mark_sent for many rows in one transaction: each True when its claim still held the
    row. The rows are written (and locked) before the stories' sources are counted, as
    _outdated explains; those counted more sources than their message shows need an edit."""
    if not sent:
        return []
    now = database_now(session)
    ids = [row.delivery_id for row in sent]
    tokens = dict(session.exec(
        select(Delivery.id, Delivery.claim_token)
        .where(col(Delivery.id).in_(ids)).with_for_update()).all())
    held = [row for row in sent if row.token and tokens.get(row.delivery_id) == row.token]
    if held:
        session.connection().execute(  # Core: one executemany, no ORM bookkeeping per row
            update(Delivery).where(col(Delivery.id) == bindparam("b_id"))
            .values(state="sent", message_id=bindparam("b_message"), sent_at=now,
                    next_attempt_at=now, claim_token=None),
            [{"b_id": row.delivery_id, "b_message": row.message_id} for row in held])
        counted = [row for row in held if row.sources is not None]
        stories = dict(session.exec(
            select(Delivery.id, Delivery.story_id)
            .where(col(Delivery.id).in_([row.delivery_id for row in counted]))).all())
        sources = dict(session.exec(
            select(Item.story_id, func.count()).where(
                col(Item.story_id).in_(set(stories.values())))
            .group_by(col(Item.story_id))).all()) if stories else {}
        outdated = [row.delivery_id for row in counted
                    if int(sources.get(stories.get(row.delivery_id, 0), 0)) > (row.sources or 0)]
        if outdated:
            session.execute(update(Delivery).where(col(Delivery.id).in_(outdated))
                            .values(needs_edit=True),
                            execution_options={"synchronize_session": False})
    kept = {row.delivery_id for row in held}
    return [row.delivery_id in kept for row in sent]


def fanout_sizes(*, session: Session, story_ids: Collection[int]) -> dict[int, int]:
    """How many chats each story goes to, all its rows counted, whatever their state."""
    if not story_ids:
        return {}
    statement = (select(Delivery.story_id, func.count())
                 .where(col(Delivery.story_id).in_(sorted(set(story_ids))))
                 .group_by(col(Delivery.story_id)))
    return {story: int(n) for story, n in session.exec(statement).all()}


def largest_due(*, session: Session, now: datetime | None = None) -> int:
    """The most rows any one story has waiting to be sent now: how long its fan-out will take."""
    now = now or database_now(session)
    per_story = (select(func.count().label("n")).select_from(Delivery)
                 .join(Chat, col(Chat.id) == Delivery.chat_id)
                 .where(*_pending(now, CLAIMABLE))
                 .group_by(col(Delivery.story_id)).subquery())
    return int(session.exec(select(func.max(per_story.c.n))).one() or 0)


def _outdated(session: Session, delivery: Delivery, sources: int) -> bool:
    """Whether the story has more sources than the message shows. The row is written first,
    and its lock (and on SQLite the write lock) held, so that an ingest adding a source
    either committed before the count below, which then sees it, or waits for this
    transaction and then flags the row itself (flag_edits)."""
    session.flush()
    count = session.exec(select(func.count()).select_from(Item)
                         .where(Item.story_id == delivery.story_id)).one()
    return int(count) > sources


def failed_attempt(
    *, session: Session, delivery_id: int, token: str, after: timedelta, error: str
) -> bool:
    """One more attempt failed, whatever the cause: back off, or after MAX_ATTEMPTS park the
    row as failed rather than retry it forever. True when it was parked."""
    delivery = _held(session, delivery_id, token)
    if delivery is None:
        return False
    delivery.attempts += 1
    delivery.claim_token = None
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.state = "failed"
        errors.record(delivery, StoredError("attempts", error))
        return True
    errors.record(delivery, StoredError("attempts", error))
    delivery.next_attempt_at = database_now(session) + after
    return False


def throttled(
    *, session: Session, delivery_id: int, token: str, after: timedelta, error: str
) -> bool:
    """A 429: not an attempt, but once the waits on this row add up past MAX_THROTTLED it is
    parked as failed. True when it was parked."""
    delivery = _held(session, delivery_id, token)
    if delivery is None:
        return False
    delivery.claim_token = None
    delivery.throttled_seconds += max(1, round(after.total_seconds()))
    if delivery.throttled_seconds >= MAX_THROTTLED.total_seconds():
        delivery.state = "failed"
        errors.record(delivery, StoredError("throttled", error))
        return True
    errors.record(delivery, StoredError("throttled", error))
    delivery.next_attempt_at = database_now(session) + after
    return False


def mark_failed(*, session: Session, delivery_id: int, token: str, code: str, error: str) -> None:
    """Parked at once: Telegram refused the message (`rejected`) or the chat (`blocked`)."""
    delivery = _held(session, delivery_id, token)
    if delivery is not None:
        delivery.state = "failed"
        errors.record(delivery, StoredError(code, error))
        delivery.claim_token = None


def count_sent_since(*, session: Session, since: datetime) -> int:
    statement = select(func.count()).select_from(Delivery).where(
        Delivery.state == "sent", col(Delivery.sent_at) >= since)
    return int(session.exec(statement).one())


def count_failed_since(*, session: Session, since: datetime) -> int:
    statement = select(func.count()).select_from(Delivery).where(
        Delivery.state == "failed", col(Delivery.created_at) >= since)
    return int(session.exec(statement).one())


def failed_since(
    *, session: Session, since: datetime, limit: int = 5
) -> list[tuple[StoredError, int]]:
    """Reasons deliveries (made since `since`) were parked for, the commonest first."""
    code, detail = col(Delivery.error_code), col(Delivery.error_detail)
    statement = (
        select(code, detail, func.count())
        .where(Delivery.state == "failed", col(Delivery.created_at) >= since)
        .group_by(code, detail)
        .order_by(func.count().desc(), code, detail)
        .limit(limit)
    )
    return [(errors.stored(stored_code, stored_detail) or StoredError(""), int(count))
            for stored_code, stored_detail, count in session.exec(statement).all()]


def release(*, session: Session, delivery_id: int, token: str) -> None:
    """Give back a claimed row that was not sent, so it is sent at once (after a restart)."""
    delivery = _held(session, delivery_id, token)
    if delivery is not None:
        delivery.next_attempt_at = database_now(session)
        delivery.claim_token = None


def hold(
    *, session: Session, delivery_id: int, token: str, state: str,
    until: datetime | None = None,
) -> None:
    """Keep a claimed row back: for the digest, or (`quiet`) until quiet hours end."""
    delivery = _held(session, delivery_id, token)
    if delivery is not None and delivery.state in CLAIMABLE:
        delivery.state = state
        delivery.next_attempt_at = until or database_now(session)
        delivery.claim_token = None


def reschedule_held(
    *, session: Session, chat_id: int, moves: Mapping[str, tuple[str, datetime]]
) -> None:
    """The chat's settings changed: what it holds in each state of `moves` goes to that
    state's new (state, due time), which news.holding works out by the new settings. A row a
    claim holds is left to it: the deliver job decides it with the new settings anyway."""
    for state, (new_state, due) in moves.items():
        session.execute(
            update(Delivery)
            .where(col(Delivery.chat_id) == chat_id, col(Delivery.state) == state,
                   col(Delivery.claim_token).is_(None))
            .values(state=new_state, next_attempt_at=due)
        )


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
            delivery.state, delivery.sent_at = "digested", database_now(session)


def flag_edits(*, session: Session, story_ids: set[int]) -> None:
    """New sources joined these stories: their sent messages are edited to list them.

    Claimed rows are flagged too, though mark_sent decides their flag again: a row being
    marked sent right now is locked, so this waits for it and then flags it as sent,
    where flagging sent rows only would skip it as it was (pending), and lose the edit."""
    session.execute(
        update(Delivery)
        .where(col(Delivery.story_id).in_(story_ids),
               or_(and_(col(Delivery.state) == "sent", col(Delivery.message_id).is_not(None)),
                   and_(col(Delivery.state).in_(CLAIMABLE),
                        col(Delivery.claim_token).is_not(None))))
        .values(needs_edit=True)
    )


def claim_edits(
    *, session: Session, lease: timedelta, now: datetime | None = None, limit: int = 50
) -> list[Claimed]:
    """Sent messages waiting for an edit, claimed like sends (leased, SKIP LOCKED)."""
    now = now or database_now(session)
    statement = (
        select(Delivery, Chat)
        .join(Chat, col(Chat.id) == Delivery.chat_id)
        .where(col(Delivery.needs_edit).is_(True), col(Delivery.state) == "sent",
               col(Delivery.message_id).is_not(None), Chat.active,
               col(Delivery.next_attempt_at) <= now)
        .order_by(col(Delivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    claimed = []
    for delivery, chat in session.exec(statement).all():
        delivery.next_attempt_at = now + lease
        claimed.append(_claimed(delivery, chat))
    return claimed


def edited(*, session: Session, delivery_id: int, sources: int | None = None) -> None:
    """The edit went out listing `sources`; flagged again if another joined meanwhile."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is not None:
        delivery.next_attempt_at = database_now(session)
        delivery.needs_edit = sources is not None and _outdated(session, delivery, sources)


def release_stale_leases(*, session: Session) -> int:
    """On SQLite only one process runs, so at start-up every lease is from a dead process."""
    now = database_now(session)
    result = session.execute(
        update(Delivery)
        .where(col(Delivery.state).in_(CLAIMABLE), col(Delivery.claim_token).is_not(None))
        .values(next_attempt_at=now, claim_token=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def topics_of_story(*, session: Session, story_id: int) -> list[str]:
    """Every topic a story matched, over all chats: names the offline brief may look for."""
    rows = session.exec(select(Delivery.topics).where(Delivery.story_id == story_id)).all()
    return sorted({topic for row in rows for topic in json.loads(row)})
