"""The stories of the last days with their texts and briefs: what a /trend chart is counted from."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from news.briefs import Brief as BriefContent
from storage.models import Brief, Chat, Item, Story

MAX_ITEMS = 60000  # a 90-day window stays a bounded read even on a busy instance


@dataclass(frozen=True)
class Candidate:
    """A stored story as the chart sees it: when it arrived, its texts, its brief if written."""

    story_id: int
    created_at: datetime
    title: str
    texts: tuple[str, ...]  # one per item: the story's sources
    brief: BriefContent | None = None  # in the chat's language
    origin: str | None = None


def candidates(*, session: Session, since: datetime, language: str) -> list[Candidate]:
    """Every story first seen since `since`, with its items' texts and its brief in `language`.

    Stories, not deliveries: a chart of a query (or of a topic before it was followed) has no
    deliveries, and re-matching the stored items is what /topics and /subscribe's preview count.
    """
    rows = session.exec(
        select(Story, Item)
        .join(Item, col(Item.story_id) == Story.id)
        .where(col(Story.created_at) >= since)
        .order_by(col(Story.id), col(Item.id))
        .limit(MAX_ITEMS)
    ).all()
    stories: dict[int, tuple[datetime, str]] = {}
    texts: dict[int, list[str]] = defaultdict(list)
    for story, item in rows:
        stories[item.story_id] = (story.created_at, story.title)
        texts[item.story_id].append(f"{item.title}\n{item.summary}")
    briefs: dict[int, tuple[BriefContent, str]] = {}
    for story_id, payload, origin in session.exec(
        select(Brief.story_id, Brief.payload, Brief.origin)
        .join(Story, col(Story.id) == Brief.story_id)
        .where(col(Story.created_at) >= since, Brief.language == language)
    ).all():
        briefs[story_id] = (BriefContent.model_validate_json(payload), origin)
    return [Candidate(story_id, created_at, title, tuple(texts[story_id]),
                      *briefs.get(story_id, (None, None)))
            for story_id, (created_at, title) in stories.items()]


def set_weekly(*, session: Session, chat_id: int, on: bool) -> None:
    """`/settings trend on|off`: whether the digest carries the week's chart."""
    chat = session.get(Chat, chat_id)
    if chat is not None:
        chat.weekly_trend = on


def mark_weekly(*, session: Session, chat_id: int, at: datetime) -> None:
    chat = session.get(Chat, chat_id)
    if chat is not None:
        chat.weekly_trend_at = at
