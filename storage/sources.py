"""Sources: added by admins, claimed when due, with their health recorded after each poll."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from news.types import NAME_CHARS, clip
from storage import errors
from storage.db import database_now
from storage.errors import StoredError
from storage.models import Item, Source
from storage.websub import pushed_intervals, retire_source

FEED = "feed"  # Source.kind of a feed; a search provider's kind is its name (news.search)


@dataclass(frozen=True)
class DueSource:
    """What a poll needs of a source, detached from the session that claimed it."""

    id: int
    url: str
    name: str
    etag: str | None
    last_modified: str | None


def by_url(*, session: Session, url: str) -> Source | None:
    return session.exec(select(Source).where(Source.url == url)).first()


def add(*, session: Session, url: str, name: str, interval_seconds: int) -> Source:
    source = Source(url=url, name=clip(name, NAME_CHARS), interval_seconds=interval_seconds)
    source.next_poll_at = database_now(session) + timedelta(seconds=interval_seconds)
    session.add(source)
    session.flush()
    return source


def listing(*, session: Session) -> list[tuple[Source, int]]:
    """Every source with its item count over the last 7 days, for /sources."""
    since = database_now(session) - timedelta(days=7)
    counts = (
        select(Item.source_id, func.count().label("n"))
        .where(col(Item.fetched_at) >= since)
        .group_by(col(Item.source_id))
        .subquery()
    )
    statement = (
        select(Source, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.source_id == Source.id)
        .order_by(col(Source.id))
    )
    return [(source, int(n)) for source, n in session.exec(statement).all()]


def remove(*, session: Session, source_id: int,
           unsubscribe_keep: timedelta | None = None) -> Source | None:
    """The source and what hangs on it. With `unsubscribe_keep` (webhook mode: the lease we
    ask hubs for), its WebSub subscription is retired first, so the websub job asks the hub to
    cancel it and pushes meanwhile are acknowledged and ignored (storage.websub)."""
    source = session.get(Source, source_id)
    if source is not None:
        if unsubscribe_keep is not None:
            retire_source(session=session, source_id=source_id, keep=unsubscribe_keep)
        session.delete(source)
    return source


def count(*, session: Session) -> int:
    """The feeds; search providers are counted where they are named (/sources)."""
    return int(session.exec(select(func.count()).select_from(Source)
                            .where(Source.kind == FEED)).one())


def claim_due(
    *, session: Session, now: datetime | None = None, limit: int = 50,
) -> list[DueSource]:
    """Claim due sources by moving their next poll forward; SKIP LOCKED lets workers share.
    Due by `now`: a pass's start, by the database's clock (every replica's), unless given."""
    now = now or database_now(session)
    statement = (
        select(Source)
        .where(col(Source.next_poll_at) <= now, col(Source.paused).is_(False),
               Source.kind == FEED)
        .order_by(col(Source.next_poll_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.exec(statement).all()
    # A source whose hub pushes its entries (a WebSub lease that holds) is polled only as a
    # safety net, at the longer interval the subscription carries (storage.websub).
    pushed = pushed_intervals(session=session, source_ids=[row.id or 0 for row in rows], now=now)
    claimed = []
    for source in rows:
        interval = max(source.interval_seconds, pushed.get(source.id or 0, 0))
        source.next_poll_at = now + timedelta(seconds=interval)
        claimed.append(DueSource(source.id or 0, source.url, source.name, source.etag,
                                 source.last_modified))
    return claimed


MAX_BACKOFF = timedelta(hours=6)
PAUSE_AFTER = 10  # failures in a row


def record_success(
    *,
    session: Session,
    source_id: int,
    etag: str | None,
    last_modified: str | None,
    min_interval: int = 0,
) -> None:
    """Healthy again; a feed's ttl or a Retry-After can only lengthen the next wait."""
    source = session.get(Source, source_id)
    if source is None:
        return
    now = database_now(session)
    source.etag, source.last_modified = etag, last_modified
    source.last_polled_at = source.last_ok_at = now
    source.failing_since, source.failures = None, 0
    errors.record(source, None)
    if min_interval > source.interval_seconds:
        source.next_poll_at = max(source.next_poll_at, now + timedelta(seconds=min_interval))


def record_failure(
    *, session: Session, source_id: int, code: str, detail: str = "", retry_after: int = 0
) -> bool:
    """Back off exponentially; True when this failure paused the source (admins are told)."""
    source = session.get(Source, source_id)
    if source is None:
        return False
    now = database_now(session)
    source.last_polled_at = now
    source.failing_since = source.failing_since or now
    errors.record(source, StoredError(code, detail))
    source.failures += 1
    wait = min(timedelta(seconds=source.interval_seconds * 2 ** min(source.failures, 16)),
               MAX_BACKOFF)
    source.next_poll_at = now + max(wait, timedelta(seconds=retry_after))
    if source.failures >= PAUSE_AFTER and not source.paused:
        source.paused = True
        return True
    return False


def get(*, session: Session, source_id: int) -> Source | None:
    return session.get(Source, source_id)


def set_paused(*, session: Session, source_id: int, paused: bool) -> Source | None:
    """Pause, or resume (polled at once, failure count reset)."""
    source = session.get(Source, source_id)
    if source is not None:
        source.paused = paused
        if not paused:
            now = database_now(session)
            source.failures = 0
            source.next_poll_at = now if source.kind == FEED else _spaced(source, now)
    return source


def set_interval(*, session: Session, source_id: int, seconds: int) -> Source | None:
    source = session.get(Source, source_id)
    if source is not None:
        source.interval_seconds = seconds
        source.next_poll_at = min(source.next_poll_at,
                                  database_now(session) + timedelta(seconds=seconds))
    return source


def poll_now(*, session: Session, source_id: int | None = None) -> list[Source]:
    """Make one source (or every unpaused one) due now."""
    statement = select(Source).where(col(Source.paused).is_(False))
    if source_id is not None:
        statement = select(Source).where(Source.id == source_id)
    rows = list(session.exec(statement).all())
    now = database_now(session)
    for source in rows:
        source.next_poll_at = now if source.kind == FEED else _spaced(source, now)
    return rows


def _spaced(provider: Source, now: datetime) -> datetime:
    """A search provider's soonest turn: a backoff is cut short, its spacing never is (the
    provider would refuse the request)."""
    last = provider.last_polled_at
    if last is None:
        return now
    return max(now, min(provider.next_poll_at,
                        last + timedelta(seconds=provider.interval_seconds)))


def all_sources(*, session: Session) -> list[Source]:
    """The feeds (an OPML file lists feeds; search providers are settings)."""
    statement = select(Source).where(Source.kind == FEED).order_by(col(Source.id))
    return list(session.exec(statement).all())
