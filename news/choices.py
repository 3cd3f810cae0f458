"""A 👎 choice carried out, and taken back: news.feedback rewrites the queries (`-term`),
storage.feedback stores them with the choice's mutes and record."""

from __future__ import annotations

from sqlmodel import Session

from news.feedback import with_exclusion, without_exclusion
from storage import feedback
from storage.models import Delivery, FeedbackChoice, Subscription


def apply(*, session: Session, choice: FeedbackChoice, delivery: Delivery,
          topics: list[Subscription] | None = None) -> list[str]:
    """Carry out a choice for `topics` (the one the reader picked; by default all the alert's
    topics); the queries it changed (or the topics it muted). Nothing changed (already
    excluded, query too long) leaves the choice unapplied."""
    if topics is None:
        topics = feedback.topic_subscriptions(session=session, delivery=delivery)
    queries = ({row.id or 0: with_exclusion(row.query, choice.text) for row in topics}
               if choice.kind == "less" else {})
    return feedback.apply(session=session, choice=choice, topics=topics, queries=queries)


def undo(*, session: Session, choice: FeedbackChoice) -> None:
    """Take back exactly what the choice changed: its `-term`, its mutes, its record."""
    queries = ({row.id or 0: without_exclusion(row.query, choice.text)
                for row in feedback.changed_by(session=session, choice=choice)}
               if choice.kind == "less" else {})
    feedback.undo(session=session, choice=choice, queries=queries)
