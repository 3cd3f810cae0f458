"""The paid-broadcast ledger: paid alerts sent per UTC day, by the database's clock as every
replica counts (storage.usage does the same for LLM tokens)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from storage.db import database_now
from storage.models import PaidBroadcast

TENTHS_PER_MESSAGE = 1  # Telegram's fee: 0.1 Star a message


def today(session: Session) -> date:
    return database_now(session).date()


def _row(session: Session, day: date) -> PaidBroadcast:
    row = session.get(PaidBroadcast, day)
    if row is None:
        try:
            with session.begin_nested():
                session.add(PaidBroadcast(day=day))
        except IntegrityError:  # another transaction created it first
            pass
        row = session.get(PaidBroadcast, day)
        assert row is not None
    return row


def of_day(*, session: Session, day: date | None = None) -> PaidBroadcast:
    """The day's figures (today's by default); zeros for a day without paid sends."""
    day = day or today(session)
    return session.get(PaidBroadcast, day) or PaidBroadcast(day=day)


def record(*, session: Session, messages: int, day: date | None = None) -> None:
    """Paid alerts Telegram accepted: they are what the Stars were spent on."""
    if messages:
        row = _row(session, day or today(session))
        session.execute(update(PaidBroadcast).where(col(PaidBroadcast.day) == row.day)
                        .values(messages=col(PaidBroadcast.messages) + messages))


def refuse(*, session: Session, day: date | None = None) -> bool:
    """Telegram refused a paid send for want of Stars: none more today. True only for the
    first refusal of the day, whichever replica saw it: admins are told once."""
    row = _row(session, day or today(session))
    result = session.execute(update(PaidBroadcast)
                             .where(col(PaidBroadcast.day) == row.day,
                                    col(PaidBroadcast.refused).is_(False))
                             .values(refused=True))
    return int(getattr(result, "rowcount", 0) or 0) == 1


def stars(messages: int) -> str:
    """0.1 Star a message, written as Telegram writes amounts: `12.3`."""
    whole, tenths = divmod(messages * TENTHS_PER_MESSAGE, 10)
    return f"{whole}.{tenths}"
