"""Counts for /stats: what the bot did today (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage import chats, deliveries, sources, usage
from storage.db import database_now
from storage.errors import StoredError
from storage.models import Story, Subscription


@dataclass(frozen=True)
class Today:
    chats: int
    subscriptions: int
    sources: int
    stories: int
    alerts: int
    calls: int
    failures: int
    tokens_in: int
    tokens_out: int
    offline: int


def midnight(*, session: Session) -> datetime:
    """Today's start (UTC) by the database's clock, which stamped what /stats counts."""
    return datetime.combine(database_now(session).date(), time(), tzinfo=UTC)


def today(*, session: Session) -> Today:
    start = midnight(session=session)
    llm = usage.of_day(session=session)
    return Today(
        chats=chats.count_active(session=session),
        subscriptions=int(session.exec(select(func.count()).select_from(Subscription)).one()),
        sources=sources.count(session=session),
        stories=int(session.exec(
            select(func.count()).select_from(Story).where(col(Story.created_at) >= start)
        ).one()),
        alerts=deliveries.count_sent_since(session=session, since=start),
        calls=llm.calls, failures=llm.failures, tokens_in=llm.tokens_in,
        tokens_out=llm.tokens_out, offline=llm.offline_briefs,
    )


@dataclass(frozen=True)
class Failed:
    """Deliveries of today's stories that were parked, and their commonest stored reasons."""

    count: int
    reasons: list[tuple[StoredError, int]]


def failed_today(*, session: Session) -> Failed:
    start = midnight(session=session)
    return Failed(deliveries.count_failed_since(session=session, since=start),
                  deliveries.failed_since(session=session, since=start))
