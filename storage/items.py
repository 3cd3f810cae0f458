"""Items and the stories they make; only items new to their source are stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table, func, insert, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from news.items import ItemDraft
from news.stories import Placement, StoredStory
from storage.models import Item, Story, utcnow

ITEMS: Table = Item.__table__  # type: ignore[attr-defined]
STORIES: Table = Story.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NewStory:
    """A story created by this ingest, with the text topics are matched against."""

    id: int
    title: str
    text: str


@dataclass
class Stored:
    """What an ingest changed: stories it created, and earlier stories new sources joined."""

    new: list[NewStory] = field(default_factory=list)
    joined: set[int] = field(default_factory=set)


def unseen(*, session: Session, source_id: int, drafts: Sequence[ItemDraft]) -> list[ItemDraft]:
    """Drafts this source never published: not by guid, nor by link, nor by content."""
    guids = {d.guid for d in drafts}
    links = {d.link for d in drafts if d.link}
    hashes = {d.content_hash for d in drafts}
    mine = select(Item.guid, Item.link, Item.content_hash).where(Item.source_id == source_id)
    known = session.exec(mine.where(or_(col(Item.guid).in_(guids), col(Item.link).in_(links),
                                        col(Item.content_hash).in_(hashes)))).all()
    seen = {value for row in known for value in row if value}
    fresh: list[ItemDraft] = []
    for draft in drafts:
        keys = {draft.guid, draft.link, draft.content_hash} - {""}
        if keys & seen:
            continue
        seen |= keys
        fresh.append(draft)
    return fresh


def store(*, session: Session, source_id: int, source_name: str, placement: Placement) -> Stored:
    """Insert the new stories and every item, each as one multi-row Core statement: the first
    poll of a thousand feeds stores fifty thousand items, and the ORM's per-row bookkeeping
    cost ten times more."""
    now = utcnow()
    stored = Stored(joined={story_id for _, story_id in placement.joins})
    story_ids: list[int] = []
    if placement.groups:
        rows = [{"title": group[0].title, "signature": group[0].signature,
                 "created_at": now} for group in placement.groups]
        returned = session.connection().execute(
            insert(STORIES).returning(STORIES.c.id, sort_by_parameter_order=True), rows)
        story_ids = [story_id for (story_id,) in returned]
    placed = [*placement.joins, *((draft, story_ids[number])
                                  for number, group in enumerate(placement.groups)
                                  for draft in group)]
    if placed:
        session.connection().execute(insert(ITEMS), [{
            "source_id": source_id, "source_name": source_name, "story_id": story_id,
            "guid": draft.guid, "link": draft.link, "title": draft.title,
            "summary": draft.summary, "content_hash": draft.content_hash,
            "published_at": draft.published_at, "fetched_at": now,
        } for draft, story_id in placed])
    for story_id, group in zip(story_ids, placement.groups, strict=True):
        first = group[0]
        stored.new.append(NewStory(story_id, first.title, f"{first.title}\n{first.summary}"))
    return stored


def stories_for_links(*, session: Session, links: set[str], since: datetime) -> dict[str, int]:
    """Recent stories that already have an item with one of these (cleaned) links."""
    if not links:
        return {}
    statement = select(Item.link, Item.story_id).where(col(Item.link).in_(links),
                                                       col(Item.fetched_at) >= since)
    return {link: story_id for link, story_id in session.exec(statement).all()}


def story_for_link(*, session: Session, link: str, since: datetime) -> int | None:
    """A recent story that already has an item with this (cleaned) link, from any source."""
    if not link:
        return None
    statement = select(Item.story_id).where(Item.link == link, col(Item.fetched_at) >= since)
    return session.exec(statement.limit(1)).first()


def signatures_since(
    *, session: Session, since: datetime, after_id: int
) -> list[StoredStory]:
    """Stories created since `since` with an id above `after_id`, for the story index, with
    their first item's source and date (news.stories weighs both)."""
    first = (sa_select(func.min(ITEMS.c.id)).where(ITEMS.c.story_id == STORIES.c.id)
             .correlate(STORIES).scalar_subquery())
    statement = (
        sa_select(STORIES.c.id, STORIES.c.signature, STORIES.c.created_at, ITEMS.c.source_id,
                  ITEMS.c.published_at)
        .outerjoin(ITEMS, ITEMS.c.id == first)
        .where(STORIES.c.created_at >= since, STORIES.c.id > after_id)
        .order_by(STORIES.c.id)
    )
    return [(story_id, sig, created, source, published)
            for story_id, sig, created, source, published in session.execute(statement)]


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
