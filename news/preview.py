"""How a query would have done over the last week: /follow's preview and /topics' counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from news.matching import Matcher
from news.types import Topic
from storage import items
from storage.db import database_now


@dataclass(frozen=True)
class Preview:
    """How a query would have done over the last week: a count and the newest headlines."""

    count: int
    newest: list[items.Recent]


PREVIEW_DAYS = 7


def _recent(session: Session) -> list[items.Recent]:
    # items are stamped by the database's clock
    since = database_now(session) - timedelta(days=PREVIEW_DAYS)
    return items.recent(session=session, since=since)


def preview(*, session: Session, query: str, show: int = 3) -> Preview:
    """Stories of the last 7 days the query matches, so a query that finds nothing shows it."""
    matcher = Matcher([Topic(0, 0, 0, query)])
    seen: set[int] = set()
    newest: list[items.Recent] = []
    for item in _recent(session):
        if item.story_id not in seen and matcher.match(item.text):
            seen.add(item.story_id)
            if len(newest) < show:
                newest.append(item)
    return Preview(len(seen), newest)


def topic_counts(*, session: Session, topics: Sequence[Topic]) -> dict[int, int]:
    """Stories each topic matched in the last 7 days, in one pass over the stored items."""
    matcher = Matcher(topics)
    counted: dict[int, set[int]] = defaultdict(set)
    for item in _recent(session):
        for topic in matcher.match(item.text):
            counted[topic.id].add(item.story_id)
    return {topic.id: len(counted[topic.id]) for topic in topics}
