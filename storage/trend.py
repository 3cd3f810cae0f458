"""The stories of the last days with their texts and briefs: what a /trend chart is counted from."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from news.types import Brief as BriefContent
from storage.items import FUTURE_SLACK
from storage.models import Brief, Chat, Item, Story

MAX_ITEMS = 60000  # a 90-day window stays a bounded read even on a busy instance


@dataclass(frozen=True)
class Candidate:
    """A stored story as the chart sees it: when it came out, its texts, its brief if written."""

    story_id: int
    published_at: datetime  # its earliest report's date; when first seen where none has one
    title: str
    texts: tuple[str, ...]  # one per item: the story's sources
    brief: BriefContent | None = None  # in the chat's language
    origin: str | None = None


def candidates(*, session: Session, since: datetime, language: str) -> list[Candidate]:
    """Every story published since `since`, with its items' texts and its brief in `language`.

    Stories, not deliveries: a chart of a query (or of a topic before it was followed) has no
    deliveries, and re-matching the stored items is what /topics and /subscribe's preview count.
    A story counts on the day it came out, not the day it was stored: a new source's backlog,
    stored today, is spread over the days it was published. Stories stored before `since` are
    not read (a date at most FUTURE_SLACK ahead is trusted, so they are read that much earlier).
    """
    stored_since = since - FUTURE_SLACK
    rows = session.exec(
        select(Story, Item)
        .join(Item, col(Item.story_id) == Story.id)
        .where(col(Story.created_at) >= stored_since)
        .order_by(col(Story.id), col(Item.id))
        .limit(MAX_ITEMS)
    ).all()
    stories: dict[int, tuple[datetime, str]] = {}
    dated: dict[int, datetime] = {}  # the earliest date its reports carry
    texts: dict[int, list[str]] = defaultdict(list)
    for story, item in rows:
        stories[item.story_id] = (story.created_at, story.title)
        if item.published_at is not None:
            dated[item.story_id] = min(item.published_at,
                                       dated.get(item.story_id, item.published_at))
        texts[item.story_id].append(f"{item.title}\n{item.summary}")
    briefs: dict[int, tuple[BriefContent, str]] = {}
    for story_id, payload, origin in session.exec(
        select(Brief.story_id, Brief.payload, Brief.origin)
        .join(Story, col(Story.id) == Brief.story_id)
        .where(col(Story.created_at) >= stored_since, Brief.language == language)
    ).all():
        briefs[story_id] = (BriefContent.model_validate_json(payload), origin)
    found = [Candidate(story_id, dated.get(story_id, first_seen), title,
                       tuple(texts[story_id]), *briefs.get(story_id, (None, None)))
             for story_id, (first_seen, title) in stories.items()]
    return [candidate for candidate in found if candidate.published_at >= since]


def set_weekly(*, session: Session, chat_id: int, on: bool) -> None:
    """`/settings trend on|off`: whether the digest carries the week's chart."""
    chat = session.get(Chat, chat_id)
    if chat is not None:
        chat.weekly_trend = on


def mark_weekly(*, session: Session, chat_id: int, at: datetime) -> None:
    chat = session.get(Chat, chat_id)
    if chat is not None:
        chat.weekly_trend_at = at
