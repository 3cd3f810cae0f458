"""Items and the stories they make; only items new to their source are stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from news.items import ItemDraft
from storage.models import Item, Story


@dataclass(frozen=True)
class NewStory:
    """A story created by this ingest, with the text topics are matched against."""

    id: int
    title: str
    text: str


def store_new(
    *, session: Session, source_id: int, source_name: str, drafts: Sequence[ItemDraft]
) -> list[NewStory]:
    """Store the drafts this source has not seen (by guid); each new item starts a story."""
    guids = {draft.guid for draft in drafts}
    seen = set(
        session.exec(
            select(Item.guid).where(Item.source_id == source_id, col(Item.guid).in_(guids))
        ).all()
    )
    created: list[NewStory] = []
    for draft in drafts:
        if draft.guid in seen:
            continue
        seen.add(draft.guid)
        story = Story(title=draft.title)
        session.add(story)
        session.flush()
        assert story.id is not None
        session.add(Item(
            source_id=source_id, source_name=source_name, story_id=story.id, guid=draft.guid,
            link=draft.link, title=draft.title, summary=draft.summary,
            published_at=draft.published_at,
        ))
        created.append(NewStory(story.id, draft.title, f"{draft.title}\n{draft.summary}"))
    session.flush()
    return created


def of_story(*, session: Session, story_id: int) -> list[Item]:
    """The story's items, first reported first: they are its sources."""
    statement = select(Item).where(Item.story_id == story_id).order_by(col(Item.id))
    return list(session.exec(statement).all())


@dataclass(frozen=True)
class Recent:
    """A stored item of the last days, for previews and /topics counts."""

    story_id: int
    title: str
    link: str
    text: str
    fetched_at: datetime


def recent(*, session: Session, since: datetime, limit: int = 20000) -> list[Recent]:
    """Items fetched since `since`, newest first, bounded so a preview stays quick."""
    statement = (
        select(Item)
        .where(col(Item.fetched_at) >= since)
        .order_by(col(Item.fetched_at).desc(), col(Item.id).desc())
        .limit(limit)
    )
    return [Recent(item.story_id, item.title, item.link, f"{item.title}\n{item.summary}",
                   item.fetched_at) for item in session.exec(statement).all()]
