"""Items and the stories they make; only items new to their source are stored."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_
from sqlmodel import Session, col, select

from news.items import ItemDraft
from storage.models import Item, Story, utcnow


@dataclass(frozen=True)
class NewStory:
    """A story created by this ingest, with the text topics are matched against."""

    id: int
    title: str
    text: str


class Clusterer(Protocol):
    """Finds the recent story a draft belongs to (news.stories), and learns new ones."""

    def same_story(self, draft: ItemDraft) -> int | None: ...

    def signature(self, draft: ItemDraft) -> str: ...

    def remember(self, story_id: int, signature: str) -> None: ...

    def alike(self, signature: str, other: str) -> bool: ...


@dataclass
class Stored:
    """What an ingest changed: stories it created, and earlier stories new sources joined."""

    new: list[NewStory] = field(default_factory=list)
    joined: set[int] = field(default_factory=set)


def content_hash(draft: ItemDraft) -> str:
    return hashlib.sha1(f"{draft.title}\n{draft.summary}".encode()).hexdigest()


def unseen(*, session: Session, source_id: int, drafts: Sequence[ItemDraft]) -> list[ItemDraft]:
    """Drafts this source never published: not by guid, nor by link, nor by content."""
    guids = {d.guid for d in drafts}
    links = {d.link for d in drafts if d.link}
    hashes = {content_hash(d) for d in drafts}
    mine = select(Item.guid, Item.link, Item.content_hash).where(Item.source_id == source_id)
    known = session.exec(mine.where(or_(col(Item.guid).in_(guids), col(Item.link).in_(links),
                                        col(Item.content_hash).in_(hashes)))).all()
    seen = {value for row in known for value in row if value}
    fresh: list[ItemDraft] = []
    for draft in drafts:
        keys = {draft.guid, draft.link, content_hash(draft)} - {""}
        if keys & seen:
            continue
        seen |= keys
        fresh.append(draft)
    return fresh


def store_new(
    *,
    session: Session,
    source_id: int,
    source_name: str,
    drafts: Sequence[ItemDraft],
    clusterer: Clusterer | None = None,
    window: timedelta = timedelta(hours=48),
) -> Stored:
    """Store unseen drafts: each joins a recent story with the same link or a near-identical
    headline and lead (from another source), or starts a new story. Rows go in by batch."""
    stored = Stored()
    fresh = unseen(session=session, source_id=source_id, drafts=drafts)
    if not fresh:
        return stored
    by_link = stories_for_links(session=session, links={d.link for d in fresh if d.link},
                                since=utcnow() - window)
    placed: list[tuple[ItemDraft, int | Story]] = []
    batch: dict[str, Story] = {}  # this batch's new stories, by link and by signature
    for draft in fresh:
        story_id = by_link.get(draft.link)
        if story_id is None and clusterer is not None:
            story_id = clusterer.same_story(draft)
        if story_id is not None:
            stored.joined.add(story_id)
            placed.append((draft, story_id))
            continue
        signature = clusterer.signature(draft) if clusterer else ""
        earlier = batch.get(draft.link) if draft.link else None
        if earlier is None and clusterer is not None:
            earlier = next((story for key, story in batch.items()
                            if key.startswith("sig:") and clusterer.alike(signature, key[4:])),
                           None)
        story = earlier or Story(title=draft.title, signature=signature)
        if draft.link:
            batch.setdefault(draft.link, story)
        batch.setdefault("sig:" + signature, story)
        placed.append((draft, story))
    new_stories = list({id(new): new for _, new in placed if isinstance(new, Story)}.values())
    session.add_all(new_stories)
    session.flush()
    firsts: dict[int, ItemDraft] = {}
    rows = []
    for draft, target in placed:
        story_id = target if isinstance(target, int) else target.id
        assert story_id is not None
        if isinstance(target, Story):
            firsts.setdefault(story_id, draft)
        rows.append(Item(
            source_id=source_id, source_name=source_name, story_id=story_id, guid=draft.guid,
            link=draft.link, title=draft.title, summary=draft.summary,
            content_hash=content_hash(draft), published_at=draft.published_at,
        ))
    session.add_all(rows)
    session.flush()
    for story in new_stories:
        assert story.id is not None
        if clusterer is not None:
            clusterer.remember(story.id, story.signature)
        first = firsts[story.id]
        stored.new.append(NewStory(story.id, first.title, f"{first.title}\n{first.summary}"))
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
) -> list[tuple[int, str, datetime]]:
    """Stories created since `since` with an id above `after_id`, for the story index."""
    statement = (
        select(Story.id, Story.signature, Story.created_at)
        .where(col(Story.created_at) >= since, col(Story.id) > after_id)
        .order_by(col(Story.id))
    )
    return [(story_id or 0, sig, created) for story_id, sig, created in session.exec(statement)]


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
