"""Subscriptions: a chat's (or forum topic's) topic queries, unique per chat and topic."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, update
from sqlalchemy import delete as sql_delete
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from news.types import Topic
from storage.db import database_now
from storage.models import Chat, Delivery, Revision, Subscription, SubscriptionRemoval

REVISION = "subscriptions"  # its row in revisions
PRUNED = "subscriptions_pruned"  # the revision through which tombstones were deleted
KEEP_REMOVALS = timedelta(days=1)  # how long a tombstone is kept


def add(
    *, session: Session, chat_id: int, query: str, thread_id: int = 0, pinned: bool = False
) -> Subscription | None:
    """Follow `query`; None when already followed (the schema says so, not Python)."""
    now = database_now(session)  # "why" compares it with stories' times, from any replica
    row = Subscription(chat_id=chat_id, query=query, thread_id=thread_id, pinned=pinned,
                       created_at=now, updated_at=now, revision=_changed(session))
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


def count(*, session: Session, chat_id: int) -> int:
    """Topics a chat follows, in all its forum topics: the per-chat cap counts these."""
    statement = select(func.count()).select_from(Subscription).where(
        Subscription.chat_id == chat_id)
    return int(session.exec(statement).one())


def for_chat(*, session: Session, chat_id: int, thread_id: int = 0) -> list[Subscription]:
    """The topics in the order they were added, the order /topics numbers them."""
    statement = (
        select(Subscription)
        .where(Subscription.chat_id == chat_id, Subscription.thread_id == thread_id)
        .order_by(col(Subscription.created_at), col(Subscription.id))
    )
    return list(session.exec(statement).all())


def delete(*, session: Session, subscription: Subscription) -> None:
    """Stop following a topic; a tombstone tells every process's matcher."""
    assert subscription.id is not None
    _removed(session, [subscription.id], _changed(session))
    session.delete(subscription)


def get(*, session: Session, subscription_id: int) -> Subscription | None:
    return session.get(Subscription, subscription_id)


def change_query(*, session: Session, subscription: Subscription, query: str) -> bool:
    """Rewrite a topic's query (an alias added); False if the chat already has that query."""
    revision = _changed(session)
    try:
        with session.begin_nested():
            subscription.query = query
            subscription.updated_at = database_now(session)
            subscription.revision = revision
            session.add(subscription)
    except IntegrityError:
        return False
    return True


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return (postgresql_insert if session.get_bind().dialect.name == "postgresql"
            else sqlite_insert)


def _changed(session: Session) -> int:
    """The revision this transaction's changes are stamped with: the counter goes up by one
    under its row lock, held to commit, so a writer never gets revision N + 1 before N has
    committed, and "rows above the revision I have seen" misses no change that commits late
    (a sequence would: its values commit in any order)."""
    session.execute(_insert(session)(Revision).values(name=REVISION, value=1)
                    .on_conflict_do_update(index_elements=["name"],
                                           set_={"value": col(Revision.value) + 1}))
    return _current(session)


def _removed(session: Session, subscription_ids: Sequence[int], revision: int) -> None:
    """Tombstones, so every process's matcher drops these subscriptions too."""
    if not subscription_ids:
        return
    now = database_now(session)  # the pruning compares it, on whichever replica runs it
    for subscription_id in subscription_ids:
        session.execute(
            _insert(session)(SubscriptionRemoval)
            .values(subscription_id=subscription_id, revision=revision, removed_at=now)
            .on_conflict_do_update(index_elements=["subscription_id"],
                                   set_={"revision": revision, "removed_at": now}))


def moved(*, session: Session, old_chat_id: int, new_chat_id: int) -> None:
    """A chat's subscriptions moved to its new id (storage.chats.migrate): the moved ones are
    stamped, and the ones left behind, about to go with the old chat's row, are removed."""
    stamp = _changed(session)
    session.execute(update(Subscription).where(col(Subscription.chat_id) == new_chat_id)
                    .values(revision=stamp))
    left = session.exec(select(Subscription.id).where(Subscription.chat_id == old_chat_id))
    _removed(session, [id for id in left.all() if id is not None], stamp)


def revision(*, session: Session) -> int:
    """The subscriptions revision: a different one means something changed (one keyed read)."""
    return _current(session)


def _current(session: Session) -> int:
    value = session.exec(select(Revision.value).where(Revision.name == REVISION)).first()
    return value or 0


@dataclass(frozen=True)
class Head:
    """Where the subscriptions stand: the newest revision, and the revision through which
    tombstones were pruned. A reader that has seen a revision below `pruned` may have missed
    a removal, and must read every row again."""

    revision: int
    pruned: int


def head(*, session: Session) -> Head:
    """Both counters in one keyed read of the revisions table: what a cache asks each time."""
    rows = dict(session.exec(select(Revision.name, Revision.value)
                             .where(col(Revision.name).in_((REVISION, PRUNED)))).all())
    return Head(rows.get(REVISION, 0), rows.get(PRUNED, 0))


def _pruned(session: Session) -> int:
    value = session.exec(select(Revision.value).where(Revision.name == PRUNED)).first()
    return value or 0


def prune_removals(*, session: Session, keep: timedelta = KEEP_REMOVALS) -> int:
    """Delete the tombstones older than `keep` (by the database's clock), and raise the
    watermark to the newest revision deleted: a reader still below it cannot trust deltas
    and reads every row (news.matcher). The deletion and the watermark commit together, and
    the watermark never goes down, whichever replicas prune at once. How many were deleted.

    A reader stays above the watermark by asking for changes at least once in `keep`; one
    that does not pays a full read, never a missed removal."""
    cutoff = database_now(session) - keep
    through = session.exec(select(func.max(SubscriptionRemoval.revision))
                           .where(col(SubscriptionRemoval.removed_at) < cutoff)).one()
    if through is None:
        return 0
    # Every revision up to `through` has committed (they commit in order, _changed), so no
    # tombstone at or below it can still arrive after this deletion.
    higher = case((col(Revision.value) > through, col(Revision.value)), else_=through)
    session.execute(_insert(session)(Revision).values(name=PRUNED, value=through)
                    .on_conflict_do_update(index_elements=["name"], set_={"value": higher}))
    result = session.execute(sql_delete(SubscriptionRemoval)
                             .where(col(SubscriptionRemoval.revision) <= through))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Changes:
    """What changed after a revision: subscriptions added or edited, and the ids removed."""

    revision: int  # the revision these changes bring a reader up to
    changed: list[Topic]
    removed: list[int]
    # The pruning watermark, read after the tombstones: above the revision asked about, a
    # tombstone may have been deleted before it was read, and these changes cannot be trusted.
    pruned: int = 0


def changes_since(*, session: Session, revision: int, upto: int | None = None) -> Changes:
    """Rows stamped after `revision`, read through the revision indexes, never the whole table.
    An id both removed and added again (SQLite may hand out an id twice) counts as it last was.
    `upto`: the revision the caller has just read, if it has; it must be read before the rows."""
    if upto is None:
        upto = _current(session)  # first: a change committed after it is read again next time
    rows = session.execute(  # five columns: more than sqlmodel's select is typed for
        sql_select(col(Subscription.id), col(Subscription.chat_id), col(Subscription.thread_id),
                   col(Subscription.query), col(Subscription.revision))
        .where(col(Subscription.revision) > revision)).all()
    gone = session.exec(
        select(SubscriptionRemoval.subscription_id, SubscriptionRemoval.revision)
        .where(col(SubscriptionRemoval.revision) > revision)).all()
    pruned = _pruned(session)  # after the tombstones: a pruning that beat them shows here
    added = {id or 0: stamp for id, _, _, _, stamp in rows}
    dropped = dict(gone)
    removed = [id for id, stamp in dropped.items() if stamp > added.get(id, -1)]
    changed = [Topic(id or 0, chat, thread, query) for id, chat, thread, query, stamp in rows
               if stamp > dropped.get(id or 0, -1)]
    return Changes(max([upto, *added.values(), *dropped.values()]), changed, removed, pruned)


def all_topics(*, session: Session, starting: str = "") -> Iterator[Topic]:
    """Every subscription, streamed: a million rows are never all in memory at once.
    `starting`: only the queries that start with it (news.semantic's mark: a tenth of them)."""
    statement = sql_select(col(Subscription.id), col(Subscription.chat_id),
                           col(Subscription.thread_id), col(Subscription.query))
    if starting:
        statement = statement.where(col(Subscription.query).startswith(starting, autoescape=True))
    # Core, not the ORM's row processing: a tenth of a million-subscription start-up build.
    rows = session.connection().execute(statement, execution_options={"yield_per": 10_000})
    for id, chat, thread, query in rows:
        yield Topic(id or 0, chat, thread, query)


def set_pinned(*, session: Session, subscription: Subscription, pinned: bool) -> None:
    """Track a topic closely (or no longer): matching is unchanged, so updated_at stays."""
    subscription.pinned = pinned
    session.add(subscription)


_IDS_PER_QUERY = 5000  # well under SQLite's limit on bound parameters


def pinned_topics(*, session: Session, delivery_ids: Collection[int]) -> dict[int, list[str]]:
    """For each delivery that came through a topic its chat (or forum topic) tracks closely,
    those topics, in the delivery's order. Read when the delivery is rendered, not when it is
    written, so pinning a topic also raises the stories it holds for the digest."""
    wanted = sorted(set(delivery_ids))
    rows: list[tuple[int, int, int, list[str]]] = []
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        statement = select(Delivery.id, Delivery.chat_id, Delivery.thread_id, Delivery.topics)
        statement = statement.where(col(Delivery.id).in_(wanted[start:start + _IDS_PER_QUERY]))
        rows += [(id or 0, chat, thread, json.loads(topics))
                 for id, chat, thread, topics in session.exec(statement).all()]
    return pinned_of(session=session, rows=rows)


def pinned_among(*, session: Session, chat_id: int, thread_id: int, topics: list[str]) -> list[str]:
    """Which of a delivery's topics its chat (or forum topic) tracks closely."""
    return pinned_of(session=session, rows=[(0, chat_id, thread_id, topics)]).get(0, [])


def story_pinned(*, session: Session, story_id: int, language: str) -> bool:
    """Whether a chat reading this language gets the story through a topic it tracks closely:
    that language's brief is then asked for specific tracking advice."""
    statement = (
        select(Delivery.id, Delivery.chat_id, Delivery.thread_id, Delivery.topics)
        .join(Chat, col(Chat.id) == Delivery.chat_id)
        .where(Delivery.story_id == story_id, Chat.language == language)
    )
    rows = [(id or 0, chat, thread, json.loads(topics)) for id, chat, thread, topics in
            session.exec(statement).all()]
    return bool(pinned_of(session=session, rows=rows))


def pinned_of(
    *, session: Session, rows: Sequence[tuple[int, int, int, list[str]]]
) -> dict[int, list[str]]:
    """(delivery, chat, thread, topics) rows -> the pinned topics each came through; for rows
    the caller already holds (a claim's), so the deliveries are not read again."""
    chat_ids = sorted({chat for _, chat, _, _ in rows})
    pins: set[tuple[int, int, str]] = set()
    for start in range(0, len(chat_ids), _IDS_PER_QUERY):
        statement = select(Subscription.chat_id, Subscription.thread_id, Subscription.query).where(
            col(Subscription.pinned).is_(True),
            col(Subscription.chat_id).in_(chat_ids[start:start + _IDS_PER_QUERY]))
        pins.update(session.exec(statement).all())
    if not pins:
        return {}
    found: dict[int, list[str]] = {}
    for delivery_id, chat, thread, topics in rows:
        pinned = [topic for topic in topics if (chat, thread, topic) in pins]
        if pinned:
            found[delivery_id] = pinned
    return found
