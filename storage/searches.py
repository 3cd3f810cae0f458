"""Search providers as sources: their rows, and which followed queries each asks about next."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Subquery, and_, case, delete, func, or_
from sqlmodel import Session, col, select

from storage.db import database_now
from storage.models import Chat, Search, Source, Subscription
from storage.sources import FEED, DueSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Configured:
    """A provider as the settings name it: kind, name shown, endpoint, seconds between asks."""

    kind: str
    name: str
    url: str
    spacing_seconds: int


def sync(*, session: Session, providers: Sequence[Configured]) -> dict[str, int]:
    """One row per configured provider (its endpoint and spacing kept current), and none for
    a provider no longer named: its searches start again with a first search if it returns.
    The source id of each provider."""
    wanted = {provider.kind: provider for provider in providers}
    ids: dict[str, int] = {}
    for row in session.exec(select(Source).where(Source.kind != FEED)).all():
        provider = wanted.pop(row.kind, None)
        if provider is None:
            session.delete(row)
            continue
        row.url, row.name = provider.url, provider.name
        row.interval_seconds = max(row.interval_seconds, provider.spacing_seconds)
        ids[row.kind] = row.id or 0
    for provider in wanted.values():
        if session.exec(select(Source.id).where(Source.url == provider.url)).first():
            log.warning("search provider %s: its URL is a feed's; not searched", provider.kind)
            continue
        row = Source(url=provider.url, name=provider.name, kind=provider.kind,
                     interval_seconds=provider.spacing_seconds)
        session.add(row)
        session.flush()
        ids[provider.kind] = row.id or 0
    return ids


def claim(*, session: Session, kind: str, now: datetime,
          lease: timedelta = timedelta(0)) -> DueSource | None:
    """The provider's turn, when its spacing has passed and it is not paused: the next turn
    moves on by the spacing, or by `lease` until the turn is released (release) or a failure
    sets its backoff, before the request is made, so no two requests of any replica come
    closer than that, nor overlap."""
    statement = (
        select(Source)
        .where(Source.kind == kind, col(Source.next_poll_at) <= now,
               col(Source.paused).is_(False))
        .with_for_update(skip_locked=True)
    )
    source = session.exec(statement).first()
    if source is None:
        return None
    source.next_poll_at = now + max(timedelta(seconds=source.interval_seconds), lease)
    return DueSource(source.id or 0, source.url, source.name, None, None)


def release(*, session: Session, source_id: int, claimed_at: datetime) -> None:
    """The turn claimed at `claimed_at` is over: the next may come once the spacing since
    that claim has passed (pause, resume or /pollnow meanwhile already moved it on)."""
    source = session.get(Source, source_id)
    if source is not None and not source.paused:
        spaced = claimed_at + timedelta(seconds=source.interval_seconds)
        source.next_poll_at = min(source.next_poll_at, max(spaced, database_now(session)))


@dataclass(frozen=True)
class Due:
    """A followed query this provider should ask about; `searched_at` None: never yet."""

    query: str
    searched_at: datetime | None


def _followed() -> Subquery:
    """Distinct queries of active chats, with their newest subscription."""
    return (
        select(Subscription.query, func.max(Subscription.created_at).label("newest"))
        .join(Chat, col(Chat.id) == Subscription.chat_id)
        .where(col(Chat.active).is_(True))
        .group_by(col(Subscription.query))
        .subquery()
    )


def due(*, session: Session, source_id: int, now: datetime, interval: timedelta,
        limit: int = 200) -> list[Due]:
    """Queries never searched, the newest subscriptions first; then those searched longest
    ago, once `interval` has passed. One row per distinct query, however many chats."""
    followed = _followed()
    query, newest = followed.c.query, followed.c.newest
    never = col(Search.id).is_(None)
    statement = (
        select(query, Search.searched_at)
        .select_from(followed)
        .outerjoin(Search, and_(col(Search.query) == query, col(Search.source_id) == source_id))
        .where(or_(never, col(Search.searched_at) <= now - interval))
        .order_by(case((never, 0), else_=1), col(Search.searched_at), newest.desc())
        .limit(limit)
    )
    return [Due(text, at) for text, at in session.exec(statement).all()]


def searched(*, session: Session, source_id: int, queries: Sequence[str], now: datetime) -> None:
    """These queries were asked about now (or passed over: they wait their next turn)."""
    rows = {row.query: row for row in session.exec(
        select(Search).where(Search.source_id == source_id, col(Search.query).in_(queries)))}
    for query in queries:
        row = rows.get(query)
        if row is None:
            session.add(Search(source_id=source_id, query=query, searched_at=now))
        else:
            row.searched_at = now


def forget_unfollowed(*, session: Session) -> int:
    """Searches of queries nobody follows any more: following one again starts over."""
    followed = select(Subscription.query)
    result = session.execute(delete(Search).where(col(Search.query).not_in(followed)))
    return int(getattr(result, "rowcount", 0) or 0)


def carried(*, session: Session) -> int:
    """How many distinct queries the providers are asked about."""
    followed = _followed()
    return int(session.exec(select(func.count()).select_from(followed)).one())
