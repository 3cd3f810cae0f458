"""Subscriptions: a chat's (or forum topic's) topic queries, unique per chat and topic."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from news.types import Topic
from storage.db import database_now
from storage.models import Chat, Delivery, Revision, Subscription

REVISION = "subscriptions"  # its row in revisions


def add(
    *, session: Session, chat_id: int, query: str, thread_id: int = 0, pinned: bool = False
) -> Subscription | None:
    """Follow `query`; None when already followed (the schema says so, not Python)."""
    now = database_now(session)  # "why" compares it with stories' times, from any replica
    row = Subscription(chat_id=chat_id, query=query, thread_id=thread_id, pinned=pinned,
                       created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    _changed(session)
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
    """Stop following a topic."""
    session.delete(subscription)
    _changed(session)


def get(*, session: Session, subscription_id: int) -> Subscription | None:
    return session.get(Subscription, subscription_id)


def change_query(*, session: Session, subscription: Subscription, query: str) -> bool:
    """Rewrite a topic's query (an alias added); False if the chat already has that query."""
    try:
        with session.begin_nested():
            subscription.query = query
            subscription.updated_at = database_now(session)
            session.add(subscription)
    except IntegrityError:
        return False
    _changed(session)
    return True


def _changed(session: Session) -> None:
    """Count a change in this transaction, so every process's cached matcher sees it."""
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)
    session.execute(insert(Revision).values(name=REVISION, value=1).on_conflict_do_update(
        index_elements=["name"], set_={"value": col(Revision.value) + 1}))


def fingerprint(*, session: Session) -> tuple[int, int, int | None, datetime | None]:
    """Changes whenever a subscription is added, removed or edited, in any process: the
    revision counts every change (add, remove, change_query) as it commits, which no clock or
    id can, since other processes' clocks differ and PostgreSQL ids do not commit in order.
    Count, newest id and newest edit also catch rows changed by hand."""
    revision = session.exec(select(Revision.value).where(Revision.name == REVISION)).first()
    count, top, last = session.exec(
        select(func.count(), func.max(Subscription.id), func.max(Subscription.updated_at))
    ).one()
    return revision or 0, int(count), top, last


def all_topics(*, session: Session) -> list[Topic]:
    statement = select(Subscription.id, Subscription.chat_id, Subscription.thread_id,
                       Subscription.query)
    return [Topic(id or 0, chat, thread, query)
            for id, chat, thread, query in session.exec(statement).all()]


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
    return _through_pins(session, rows)


def pinned_among(*, session: Session, chat_id: int, thread_id: int, topics: list[str]) -> list[str]:
    """Which of a delivery's topics its chat (or forum topic) tracks closely."""
    return _through_pins(session, [(0, chat_id, thread_id, topics)]).get(0, [])


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
    return bool(_through_pins(session, rows))


def _through_pins(
    session: Session, rows: Sequence[tuple[int, int, int, list[str]]]
) -> dict[int, list[str]]:
    """(delivery, chat, thread, topics) rows -> the pinned topics each came through."""
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
