"""LLM usage per UTC day; the daily token budget is checked against it."""

from __future__ import annotations

from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from news.types import Written
from storage.db import database_now
from storage.models import LlmUsage


def today(session: Session) -> date:
    """The UTC day by the database's clock: every replica spends into the same day's budget."""
    return database_now(session).date()


def _row(session: Session, day: date) -> LlmUsage:
    row = session.get(LlmUsage, day)
    if row is None:
        try:
            with session.begin_nested():
                session.add(LlmUsage(day=day))
        except IntegrityError:  # another worker created it first
            pass
        row = session.get(LlmUsage, day)
        assert row is not None
    return row


def record(*, session: Session, written: Written, day: date | None = None) -> None:
    row = _row(session, day or today(session))
    row.calls += written.calls
    row.failures += written.failures
    row.tokens_in += written.tokens_in
    row.tokens_out += written.tokens_out
    row.offline_briefs += written.origin == "offline"


def record_calls(
    *, session: Session, calls: int, failures: int, tokens_in: int, tokens_out: int,
    day: date | None = None,
) -> None:
    """Calls that are not briefs (alias suggestions) count in /stats and the budget too."""
    row = _row(session, day or today(session))
    row.calls += calls
    row.failures += failures
    row.tokens_in += tokens_in
    row.tokens_out += tokens_out


def over_budget(*, session: Session, budget: int, day: date | None = None) -> bool:
    """True once the day's tokens reached a budget (0: no budget)."""
    return bool(budget) and spent(session=session, day=day) >= budget


def of_day(*, session: Session, day: date | None = None) -> LlmUsage:
    return session.get(LlmUsage, day or today(session)) or LlmUsage(day=day or today(session))


def spent(*, session: Session, day: date | None = None) -> int:
    row = of_day(session=session, day=day)
    return row.tokens_in + row.tokens_out


def claim_budget_notice(*, session: Session, day: date | None = None) -> bool:
    """True once per day: the caller tells the admins that briefs went offline."""
    row = _row(session, day or today(session))
    if row.budget_notified:
        return False
    row.budget_notified = True
    return True
