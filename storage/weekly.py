"""The weekly brief: each chat's setting and turn, and one storyline per topic, ISO week and
language, claimed so that one replica asks the model for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from storage.db import database_now
from storage.models import Chat, Delivery, WeeklyBrief

DELIVERED = ("sent", "digested")  # what the chat has seen: an alert or a digest line


def set_weekly(
    *, session: Session, chat_id: int, on: bool, started: datetime, day: int | None = None,
    clock: str | None = None,
) -> None:
    """`/settings weekly on|off|DAY HH:MM`. Turning it on, or setting its time, starts the
    count afresh from `started` (news.schedule.weekly_start: the first brief comes at the
    next weekly time, this minute's included)."""
    chat = session.get(Chat, chat_id)
    if chat is None:
        return
    if on and (not chat.weekly_brief or day is not None):
        chat.weekly_brief_at = started
    chat.weekly_brief = on
    if day is not None and clock is not None:
        chat.weekly_day, chat.weekly_time = day, clock


def chats_on(*, session: Session) -> list[Chat]:
    """Active chats that asked for the weekly brief."""
    return list(session.exec(select(Chat).where(Chat.active, col(Chat.weekly_brief))).all())


def claim_chat(*, session: Session, chat_id: int, seen: datetime | None, at: datetime) -> bool:
    """Take the chat's weekly brief: `weekly_brief_at` moves from `seen` (read when it was
    found due) to `at` for exactly one replica, as storage.chats.claim_digest does."""
    last = col(Chat.weekly_brief_at)
    result = session.execute(
        update(Chat)
        .where(col(Chat.id) == chat_id, last.is_(None) if seen is None else last == seen)
        .values(weekly_brief_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def release_chat(*, session: Session, chat_id: int, at: datetime,
                 previous: datetime | None) -> None:
    """The claimed brief could not be sent: due again, for whichever replica comes next."""
    session.execute(
        update(Chat)
        .where(col(Chat.id) == chat_id, col(Chat.weekly_brief_at) == at)
        .values(weekly_brief_at=previous)
    )


def delivered_ids(*, session: Session, chat_id: int, since: datetime,
                  until: datetime) -> list[int]:
    """The chat's deliveries it has seen (alert or digest) created in the week."""
    statement = select(Delivery.id).where(
        Delivery.chat_id == chat_id, col(Delivery.state).in_(DELIVERED),
        col(Delivery.created_at) >= since, col(Delivery.created_at) <= until)
    return [row for row in session.exec(statement).all() if row is not None]


@dataclass(frozen=True)
class Cited:
    """A story the storyline was written from, as its citation shows it."""

    story_id: int
    headline: str
    link: str


@dataclass(frozen=True)
class Stored:
    """A written storyline (payload None: the model failed, offline for this week)."""

    origin: str
    payload: str | None
    stories: list[Cited]


def get(*, session: Session, query: str, week: str, language: str) -> Stored | None:
    """The week's storyline of the topic in the language, once written."""
    row = session.exec(select(WeeklyBrief).where(
        WeeklyBrief.query == query, WeeklyBrief.week == week, WeeklyBrief.language == language,
        WeeklyBrief.origin != "")).first()
    if row is None:
        return None
    cited = [Cited(int(s["story_id"]), str(s["headline"]), str(s["link"]))
             for s in json.loads(row.stories)]
    return Stored(row.origin, row.payload, cited)


def claim(
    *, session: Session, query: str, week: str, language: str, lease: timedelta,
    now: datetime | None = None,
) -> bool:
    """Take the storyline to write: True for one writer across every replica until `lease`
    ends (then another takes it over: the first one died). A written one is never claimed."""
    now = now or database_now(session)
    until = now + lease
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)
    statement = insert(WeeklyBrief).values(query=query, week=week, language=language, origin="",
                                           claimed_until=until, stories="[]", tokens_in=0,
                                           tokens_out=0, created_at=now)
    upsert = statement.on_conflict_do_update(
        index_elements=["query", "week", "language"], set_={"claimed_until": until},
        where=(col(WeeklyBrief.origin) == "") & (col(WeeklyBrief.claimed_until) <= now),
    ).returning(col(WeeklyBrief.id))
    return session.execute(upsert).first() is not None


def save(
    *, session: Session, query: str, week: str, language: str, origin: str,
    payload: str | None, stories: list[Cited], tokens_in: int = 0, tokens_out: int = 0,
) -> None:
    """Store the claimed storyline; every chat of the language reads it from now on."""
    row = session.exec(select(WeeklyBrief).where(
        WeeklyBrief.query == query, WeeklyBrief.week == week,
        WeeklyBrief.language == language)).one()
    listed: list[dict[str, Any]] = [
        {"story_id": s.story_id, "headline": s.headline, "link": s.link} for s in stories]
    row.origin, row.payload, row.claimed_until = origin, payload, None
    row.stories = json.dumps(listed, ensure_ascii=False)
    row.tokens_in, row.tokens_out = tokens_in, tokens_out


def give_up(*, session: Session, query: str, week: str, language: str) -> None:
    """The writer stopped before it finished (shutdown): another may take it now."""
    session.execute(
        update(WeeklyBrief)
        .where(col(WeeklyBrief.query) == query, col(WeeklyBrief.week) == week,
               col(WeeklyBrief.language) == language, col(WeeklyBrief.origin) == "")
        .values(claimed_until=database_now(session))
    )
