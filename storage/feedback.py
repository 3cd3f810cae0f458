"""Feedback under alerts: votes (one per person), the choices 👎 offers, and mutes."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from news.types import Choice
from storage import subscriptions
from storage.db import database_now
from storage.models import Delivery, FeedbackChoice, Item, Mute, Source, Subscription, Vote

_IDS_PER_QUERY = 5000  # well under SQLite's limit on bound parameters


def delivery_in(*, session: Session, delivery_id: int, chat_id: int) -> Delivery | None:
    """The alert, if it was sent to this chat: a press elsewhere is forged or stale."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.chat_id != chat_id or delivery.message_id is None:
        return None
    return delivery


def being_sent(*, session: Session, chat_id: int,
               delivery_ids: Collection[int] | None = None) -> list[int]:
    """This chat's alerts (of `delivery_ids`, where given) claimed for sending whose message id
    is not stored yet: a press on one, or /why replying to one, has come before Telegram's
    answer to the send was recorded."""
    statement = select(Delivery.id).where(Delivery.chat_id == chat_id,
                                          col(Delivery.message_id).is_(None),
                                          col(Delivery.claim_token).is_not(None))
    if delivery_ids is not None:
        statement = statement.where(col(Delivery.id).in_(list(delivery_ids)))
    return [delivery_id for delivery_id in session.exec(statement).all()
            if delivery_id is not None]


def delivery_of_message(*, session: Session, chat_id: int, message_id: int) -> Delivery | None:
    """The alert a message of this chat is (for /why sent as a reply)."""
    statement = select(Delivery).where(Delivery.chat_id == chat_id,
                                       Delivery.message_id == message_id)
    return session.exec(statement).first()


def replied_alert(*, session: Session, chat_id: int, message_id: int,
                  delivery_ids: Collection[int] | None = None) -> tuple[Delivery | None, list[int]]:
    """The alert a message of this chat is, and while it is not on record the alerts it may
    yet turn out to be: this chat's (of `delivery_ids`, those the message names) being sent."""
    delivery = delivery_of_message(session=session, chat_id=chat_id, message_id=message_id)
    if delivery is not None:
        return delivery, []
    return None, being_sent(session=session, chat_id=chat_id, delivery_ids=delivery_ids)


def topic_subscriptions(*, session: Session, delivery: Delivery) -> list[Subscription]:
    """The chat's topics this alert came for, found by their query, or by the choices of
    this alert that changed them since."""
    wanted = set(json.loads(delivery.topics))
    changed = {sub_id for choice in choices(session=session, delivery_id=delivery.id or 0)
               for sub_id in json.loads(choice.changed)}
    rows = subscriptions.for_chat(session=session, chat_id=delivery.chat_id,
                                  thread_id=delivery.thread_id)
    return [row for row in rows if row.query in wanted or row.id in changed]


def vote(*, session: Session, delivery: Delivery, user_id: int, value: str) -> str:
    """Record a person's 👍 or 👎: "added", "changed" (from the other), or "removed" (the
    same pressed again undoes it). The schema keeps one vote per person and alert."""
    row = session.exec(select(Vote).where(Vote.delivery_id == delivery.id,
                                          Vote.user_id == user_id)).first()
    if row is not None and row.value == value:
        session.delete(row)
        return "removed"
    if row is not None:
        row.value = value
        session.add(row)
        return "changed"
    topics = topic_subscriptions(session=session, delivery=delivery)
    try:
        with session.begin_nested():
            session.add(Vote(delivery_id=delivery.id or 0, user_id=user_id, value=value,
                             subscription_id=topics[0].id if topics else None,
                             created_at=database_now(session)))  # counted by any replica
    except IntegrityError:  # the same person's other press got there first
        return "changed"
    return "added"


def tally(*, session: Session, delivery_id: int) -> tuple[int, int]:
    """(👍, 👎) on one alert."""
    statement = (select(Vote.value, func.count()).where(Vote.delivery_id == delivery_id)
                 .group_by(col(Vote.value)))
    counts = dict(session.exec(statement).all())
    return int(counts.get("up", 0)), int(counts.get("down", 0))


def choices(*, session: Session, delivery_id: int) -> list[FeedbackChoice]:
    statement = (select(FeedbackChoice).where(FeedbackChoice.delivery_id == delivery_id)
                 .order_by(col(FeedbackChoice.id)))
    return list(session.exec(statement).all())


def keyboard_state(*, session: Session, delivery_id: int) -> tuple[int, int, list[Choice]]:
    """What an alert's keyboard shows: its votes and its choices."""
    up, down = tally(session=session, delivery_id=delivery_id)
    offered = [Choice(row.id or 0, row.kind, row.text, row.applied)
               for row in choices(session=session, delivery_id=delivery_id)]
    return up, down, offered


def offer(*, session: Session, delivery: Delivery, terms: list[str],
          max_sources: int) -> list[FeedbackChoice]:
    """The alert's choices, stored once: "less about" each term, "mute" each source of the
    story, "not relevant"."""
    existing = choices(session=session, delivery_id=delivery.id or 0)
    if existing:
        return existing
    statement = (select(Item.source_id, Source.name).join(Source, col(Source.id) == Item.source_id)
                 .where(Item.story_id == delivery.story_id).order_by(col(Item.id)))
    reporters: dict[int, str] = {}
    for source_id, name in session.exec(statement).all():
        if source_id is not None and len(reporters) < max_sources:
            reporters.setdefault(source_id, name)
    now = database_now(session)  # /stats counts them from the database's midnight
    rows = [FeedbackChoice(delivery_id=delivery.id or 0, kind="less", text=term[:120],
                           created_at=now) for term in terms]
    rows += [FeedbackChoice(delivery_id=delivery.id or 0, kind="mute", text=name[:120],
                            source_id=source_id, created_at=now)
             for source_id, name in reporters.items()]
    rows.append(FeedbackChoice(delivery_id=delivery.id or 0, kind="irrelevant", text="",
                               created_at=now))
    session.add_all(rows)
    session.flush()
    return rows


def get_choice(*, session: Session, choice_id: int) -> FeedbackChoice | None:
    return session.get(FeedbackChoice, choice_id)


def apply(*, session: Session, choice: FeedbackChoice, topics: list[Subscription],
          queries: Mapping[int, str | None]) -> list[str]:
    """Carry out a choice for `topics`, whose queries a "less" choice rewrites to `queries`
    (news.choices writes them, by id); the queries it changed (or the topics it muted).
    Nothing changed (already excluded, query too long: None) leaves the choice unapplied."""
    changed: list[Subscription] = []
    if choice.kind == "less":
        for row in topics:
            query = queries.get(row.id or 0)
            if query is not None and subscriptions.change_query(session=session,
                                                                subscription=row, query=query):
                changed.append(row)
    elif choice.kind == "mute" and choice.source_id is not None:
        for row in topics:
            try:
                with session.begin_nested():
                    session.add(Mute(subscription_id=row.id or 0, source_id=choice.source_id))
                changed.append(row)
            except IntegrityError:  # already muted (from another alert): nothing to undo here
                continue
    elif choice.kind == "irrelevant":
        changed = topics[:1]
    if choice.kind == "irrelevant" or changed:
        choice.applied = True
        choice.changed = json.dumps([row.id for row in changed])
        session.add(choice)
    return [row.query for row in changed]


def changed_by(*, session: Session, choice: FeedbackChoice) -> list[Subscription]:
    """The topics an applied choice changed (or muted), those still followed."""
    rows = (subscriptions.get(session=session, subscription_id=sub_id)
            for sub_id in json.loads(choice.changed))
    return [row for row in rows if row is not None]


def undo(*, session: Session, choice: FeedbackChoice, queries: Mapping[int, str | None]
         ) -> None:
    """Take back exactly what the choice changed: its `-term` (each topic's query back to
    `queries`, by id: news.choices writes them), its mutes, its record."""
    for row in changed_by(session=session, choice=choice):
        sub_id = row.id or 0
        if choice.kind == "less":
            query = queries.get(sub_id)
            if query is not None:
                subscriptions.change_query(session=session, subscription=row, query=query)
        elif choice.kind == "mute":
            mute = session.exec(select(Mute).where(Mute.subscription_id == sub_id,
                                                   Mute.source_id == choice.source_id)).first()
            if mute is not None:
                session.delete(mute)
    choice.applied, choice.changed = False, "[]"
    session.add(choice)


@dataclass(frozen=True)
class Muted:
    """A mute as /topics lists it."""

    id: int
    subscription_id: int
    source: str


def mutes_for(*, session: Session, subscription_ids: Collection[int]) -> list[Muted]:
    statement = (
        select(Mute.id, Mute.subscription_id, Source.name)
        .join(Source, col(Source.id) == Mute.source_id)
        .where(col(Mute.subscription_id).in_(list(subscription_ids)))
        .order_by(col(Mute.id))
    )
    return [Muted(mute_id or 0, sub_id, name)
            for mute_id, sub_id, name in session.exec(statement).all()]


def unmute(*, session: Session, mute_id: int, chat_id: int) -> tuple[str, str] | None:
    """Lift a mute of this chat's topic: (source name, topic query), or None if there is none."""
    statement = (
        select(Mute, Subscription.query, Source.name)
        .join(Subscription, col(Subscription.id) == Mute.subscription_id)
        .join(Source, col(Source.id) == Mute.source_id)
        .where(Mute.id == mute_id, Subscription.chat_id == chat_id)
    )
    found = session.exec(statement).first()
    if found is None:
        return None
    mute, query, name = found
    session.delete(mute)
    return name, query


def muted_sources(*, session: Session, subscription_ids: Collection[int]) -> dict[int, set[int]]:
    """Source ids muted for each of these topics."""
    wanted = sorted(subscription_ids)
    muted: dict[int, set[int]] = defaultdict(set)
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        statement = select(Mute.subscription_id, Mute.source_id).where(
            col(Mute.subscription_id).in_(wanted[start:start + _IDS_PER_QUERY]))
        for sub_id, source_id in session.exec(statement).all():
            muted[sub_id].add(source_id)
    return muted


def unmuted(
    *, session: Session, matches: Mapping[int, Collection[int]]
) -> dict[int, Collection[int]]:
    """The matches left once mutes apply: a topic that muted every source of a story does
    not get it (a new story has the one source that brought it)."""
    subs = set().union(*matches.values()) if matches else set()
    muted = muted_sources(session=session, subscription_ids=subs)
    if not muted:
        return dict(matches)
    reporters: dict[int, set[int | None]] = defaultdict(set)
    story_ids = sorted(matches)
    for start in range(0, len(story_ids), _IDS_PER_QUERY):
        statement = select(Item.story_id, Item.source_id).where(
            col(Item.story_id).in_(story_ids[start:start + _IDS_PER_QUERY]))
        for story_id, source_id in session.exec(statement).all():
            reporters[story_id].add(source_id)
    return {story_id: {sub for sub in sub_ids
                       if not reporters[story_id] or not reporters[story_id] <= muted[sub]}
            for story_id, sub_ids in matches.items()}


def topic_votes(
    *, session: Session, subscription_ids: Collection[int], since: datetime
) -> dict[int, tuple[int, int]]:
    """(👍, 👎) each topic got since `since`: a vote on an alert counts for every topic the
    alert came for (by query, or changed since by one of its choices)."""
    wanted = set(subscription_ids)
    subs = session.exec(select(Subscription).where(col(Subscription.id).in_(list(wanted)))).all()
    places: dict[tuple[int, int], dict[str, int]] = defaultdict(dict)
    for sub in subs:
        places[(sub.chat_id, sub.thread_id)][sub.query] = sub.id or 0
    statement = (
        select(Vote, Delivery)
        .join(Delivery, col(Delivery.id) == Vote.delivery_id)
        .where(col(Delivery.chat_id).in_(sorted({sub.chat_id for sub in subs})),
               col(Vote.created_at) >= since)
    )
    votes = session.exec(statement).all()
    changed: dict[int, set[int]] = defaultdict(set)
    delivery_ids = sorted({vote.delivery_id for vote, _ in votes})
    for start in range(0, len(delivery_ids), _IDS_PER_QUERY):
        for delivery_id, ids in session.exec(
                select(FeedbackChoice.delivery_id, FeedbackChoice.changed).where(
                    col(FeedbackChoice.delivery_id).in_(
                        delivery_ids[start:start + _IDS_PER_QUERY]))).all():
            changed[delivery_id].update(json.loads(ids))
    counts: dict[int, tuple[int, int]] = {}
    for vote, delivery in votes:
        named = places[(delivery.chat_id, delivery.thread_id)]
        targets = {named[query] for query in json.loads(delivery.topics) if query in named}
        targets |= ({vote.subscription_id or 0} | changed[vote.delivery_id]) & wanted
        for sub_id in targets:
            up, down = counts.get(sub_id, (0, 0))
            counts[sub_id] = (up + 1, down) if vote.value == "up" else (up, down + 1)
    return counts


@dataclass(frozen=True)
class Totals:
    """Feedback over every chat, for /stats."""

    up: int
    down: int
    less: int
    mute: int
    irrelevant: int


def totals(*, session: Session, since: datetime) -> Totals:
    votes = dict(session.exec(
        select(Vote.value, func.count()).where(col(Vote.created_at) >= since)
        .group_by(col(Vote.value))).all())
    chosen = dict(session.exec(
        select(FeedbackChoice.kind, func.count())
        .where(col(FeedbackChoice.created_at) >= since, col(FeedbackChoice.applied).is_(True))
        .group_by(col(FeedbackChoice.kind))).all())
    return Totals(int(votes.get("up", 0)), int(votes.get("down", 0)),
                  int(chosen.get("less", 0)), int(chosen.get("mute", 0)),
                  int(chosen.get("irrelevant", 0)))
