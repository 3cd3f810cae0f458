"""Sources: added by admins, claimed when due, with their health recorded after each poll."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import Item, Source, utcnow


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
    source = Source(url=url, name=name, interval_seconds=interval_seconds)
    source.next_poll_at = utcnow() + timedelta(seconds=interval_seconds)
    session.add(source)
    session.flush()
    return source


def listing(*, session: Session) -> list[tuple[Source, int]]:
    """Every source with its item count over the last 7 days, for /sources."""
    since = utcnow() - timedelta(days=7)
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


def remove(*, session: Session, source_id: int) -> Source | None:
    source = session.get(Source, source_id)
    if source is not None:
        session.delete(source)
    return source


def count(*, session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Source)).one())


def claim_due(*, session: Session, now: datetime, limit: int = 50) -> list[DueSource]:
    """Claim due sources by moving their next poll forward; SKIP LOCKED lets workers share."""
    statement = (
        select(Source)
        .where(col(Source.next_poll_at) <= now, col(Source.paused).is_(False))
        .order_by(col(Source.next_poll_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = []
    for source in session.exec(statement).all():
        source.next_poll_at = now + timedelta(seconds=source.interval_seconds)
        claimed.append(DueSource(source.id or 0, source.url, source.name, source.etag,
                                 source.last_modified))
    return claimed


def record_success(
    *, session: Session, source_id: int, etag: str | None, last_modified: str | None
) -> None:
    source = session.get(Source, source_id)
    if source is None:
        return
    now = utcnow()
    source.etag, source.last_modified = etag, last_modified
    source.last_polled_at = source.last_ok_at = now
    source.failing_since, source.last_error = None, None


def record_failure(*, session: Session, source_id: int, error: str) -> None:
    source = session.get(Source, source_id)
    if source is None:
        return
    now = utcnow()
    source.last_polled_at = now
    source.failing_since = source.failing_since or now
    source.last_error = error[:500]
