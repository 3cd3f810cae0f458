"""Suggestions offered as buttons after /subscribe; a button press carries only their id."""

from __future__ import annotations

from sqlmodel import Session

from storage.models import Suggestion


def save(
    *, session: Session, subscription_id: int, kind: str, texts: list[str]
) -> list[Suggestion]:
    rows = [Suggestion(subscription_id=subscription_id, kind=kind, text=text) for text in texts]
    session.add_all(rows)
    session.flush()
    return rows


def get(*, session: Session, suggestion_id: int) -> Suggestion | None:
    return session.get(Suggestion, suggestion_id)


def drop(*, session: Session, suggestion: Suggestion) -> None:
    session.delete(suggestion)
