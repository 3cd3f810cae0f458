"""Subscriptions: a chat's topic queries, unique per chat."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Chat, Subscription


def add(*, session: Session, chat_id: int, query: str) -> bool:
    """Follow `query`; False when the chat already follows it (the schema says so, not Python)."""
    try:
        with session.begin_nested():
            session.add(Subscription(chat_id=chat_id, query=query))
    except IntegrityError:
        return False
    return True


def for_chat(*, session: Session, chat_id: int) -> list[Subscription]:
    """The chat's topics in the order they were added, the order /topics numbers them."""
    statement = (
        select(Subscription)
        .where(Subscription.chat_id == chat_id)
        .order_by(col(Subscription.created_at), col(Subscription.id))
    )
    return list(session.exec(statement).all())


def remove(*, session: Session, chat_id: int, query: str) -> str | None:
    """Stop following `query`, given as written or as its number in /topics; returns it."""
    topics = for_chat(session=session, chat_id=chat_id)
    target = next((sub for sub in topics if sub.query.casefold() == query.casefold()), None)
    if target is None and query.isdigit() and 1 <= int(query) <= len(topics):
        target = topics[int(query) - 1]
    if target is None:
        return None
    session.delete(target)
    return target.query


def active(*, session: Session) -> list[Subscription]:
    """Every subscription of every chat that still receives alerts."""
    statement = select(Subscription).join(Chat).where(Chat.active)
    return list(session.exec(statement).all())
