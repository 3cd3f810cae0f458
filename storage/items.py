"""Items and the stories they make; only items new to their source are stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urldefrag

from sqlalchemy import Table, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from news.types import NAME_CHARS, D, Draft, Placement, StoredStory, clip
from storage.db import database_now
from storage.models import Item, Source, Story

ITEMS: Table = Item.__table__  # type: ignore[attr-defined]
STORIES: Table = Story.__table__  # type: ignore[attr-defined]
SOURCES: Table = Source.__table__  # type: ignore[attr-defined]
FUTURE_SLACK = timedelta(days=1)  # clocks and zones disagree; beyond this a date is wrong


@dataclass(frozen=True)
class NewStory:
    """A story created by this ingest, with the text topics are matched against."""

    id: int
    title: str
    text: str


@dataclass
class Stored:
    """What an ingest changed: stories it created, earlier stories new sources joined, and
    how many items it stored."""

    new: list[NewStory] = field(default_factory=list)
    joined: set[int] = field(default_factory=set)
    items: int = 0
    created: list[datetime] = field(default_factory=list)  # each new story's stored created_at


def unseen(*, session: Session, source_id: int, drafts: Sequence[D]) -> list[D]:
    """Drafts this source never published. Identity is the guid (the entry's id, its link only
    when it has none: news.items.normalize); entries that share a link or a text are still
    different items (SPEC §2), and only the story step may merge them."""
    guids = {d.guid for d in drafts}
    mine = select(Item.guid).where(Item.source_id == source_id, col(Item.guid).in_(guids))
    seen = set(session.exec(mine).all())
    fresh: list[D] = []
    for draft in drafts:
        if draft.guid not in seen:
            seen.add(draft.guid)
            fresh.append(draft)
    return fresh


def seen_before_upgrade(
    *, session: Session, source_id: int, drafts: Sequence[D]
) -> list[D]:
    """Of a source's unseen drafts, those that Tidings before migration 0008 took as seen (a
    stored item had their link, fragment aside, or their text) and that are no newer than its
    last stored item: they are old posts, to be stored without an alert. Asked once per source
    upgraded: the answer clears the source's flag."""
    flagged = session.exec(select(Source.legacy_identity).where(Source.id == source_id)).first()
    if not flagged or not drafts:
        return []
    session.connection().execute(
        update(SOURCES).where(SOURCES.c.id == source_id).values(legacy_identity=False))
    links = {urldefrag(d.link).url for d in drafts if d.link}
    hashes = {d.content_hash for d in drafts}
    mine = select(Item.link, Item.content_hash).where(Item.source_id == source_id)
    known = session.exec(mine.where(or_(col(Item.link).in_(links),
                                        col(Item.content_hash).in_(hashes)))).all()
    last = session.exec(select(func.max(Item.fetched_at))
                        .where(Item.source_id == source_id)).first()
    if not known or last is None:
        return []
    known_links = {link for link, _ in known if link}
    known_hashes = {content_hash for _, content_hash in known if content_hash}
    return [d for d in drafts
            if (d.published_at is None or d.published_at <= last)
            and ((d.link and urldefrag(d.link).url in known_links)
                 or d.content_hash in known_hashes)]


def published(draft: Draft, now: datetime) -> datetime:
    """The date an item is shown with and judged by: its own, unless it has none or it lies
    more than a day ahead (a wrong zone, a typo), where the time it was first seen is."""
    when = draft.published_at
    return when if when is not None and when <= now + FUTURE_SLACK else now


def store(*, session: Session, source_id: int, source_name: str, placement: Placement[D]) -> Stored:
    """Insert the new stories and every item, each as one multi-row Core statement: the first
    poll of a thousand feeds stores fifty thousand items, and the ORM's per-row bookkeeping
    cost ten times more."""
    now = database_now(session)
    stored = Stored(joined={story_id for _, story_id in placement.joins})
    story_ids: list[int] = []
    if placement.groups:
        rows = [{"title": group[0].title, "signature": group[0].signature}
                for group in placement.groups]
        statement = (insert(STORIES).values(created_at=_stamp(session, now))
                     .returning(STORIES.c.id, STORIES.c.created_at,
                                sort_by_parameter_order=True))
        for story_id, created in session.connection().execute(statement, rows):
            story_ids.append(story_id)
            stored.created.append(created)
    placed = [*placement.joins, *((draft, story_ids[number])
                                  for number, group in enumerate(placement.groups)
                                  for draft in group)]
    if placed:
        session.connection().execute(insert(ITEMS), [{
            "source_id": source_id, "source_name": clip(draft.publisher, NAME_CHARS)
            or source_name, "story_id": story_id,
            "guid": draft.guid, "link": draft.link, "title": draft.title,
            "summary": draft.summary, "content_hash": draft.content_hash,
            "published_at": published(draft, now), "fetched_at": now,
        } for draft, story_id in placed])
    stored.items = len(placed)
    for story_id, group in zip(story_ids, placement.groups, strict=True):
        first = group[0]
        stored.new.append(NewStory(story_id, first.title, f"{first.title}\n{first.summary}"))
    return stored


def _stamp(session: Session, now: datetime) -> Any:
    """A new story's created_at. On PostgreSQL the database's clock when the row is written:
    stories are written holding the story lock (news.ingest.clustered), so these times
    follow the order in which stories commit, whichever process wrote them, and the story
    index tops up by them (news.stories.Clusters). SQLite's one process uses its own."""
    if session.get_bind().dialect.name == "postgresql":
        return func.clock_timestamp()
    return now


def signatures_since(
    *, session: Session, since: datetime, after: datetime | None = None
) -> list[StoredStory]:
    """Stories created since `since` (and after `after`), oldest first, for the story index,
    with their first item's source and date (news.stories weighs both).

    Each story's first item is found by grouping the window's items by story, never by a
    min(id) subquery per story: PostgreSQL answers that one by walking the primary key from
    the oldest item, so every story cost a scan of the whole table (quadratic: a replica's
    start-up over a busy window took minutes, and each top-up most of a poll's CPU)."""
    window = [STORIES.c.created_at >= since]
    if after is not None:
        window.append(STORIES.c.created_at > after)
    firsts = (sa_select(ITEMS.c.story_id, func.min(ITEMS.c.id).label("item_id"))
              .where(ITEMS.c.story_id.in_(sa_select(STORIES.c.id).where(*window)))
              .group_by(ITEMS.c.story_id).subquery())
    statement = (
        sa_select(STORIES.c.id, STORIES.c.signature, STORIES.c.created_at, ITEMS.c.source_id,
                  ITEMS.c.published_at)
        .select_from(STORIES)
        .outerjoin(firsts, firsts.c.story_id == STORIES.c.id)
        .outerjoin(ITEMS, ITEMS.c.id == firsts.c.item_id)
        .where(*window)
        .order_by(STORIES.c.created_at, STORIES.c.id)
    )
    return [(story_id, sig, created, source, published)
            for story_id, sig, created, source, published in session.execute(statement)]


def existing(*, session: Session, story_ids: set[int]) -> set[int]:
    """Which of these stories the database holds; they stay (FOR KEY SHARE) until commit."""
    if not story_ids:
        return set()
    statement = (sa_select(STORIES.c.id).where(STORIES.c.id.in_(sorted(story_ids)))
                 .with_for_update(key_share=True))
    return {story_id for (story_id,) in session.connection().execute(statement)}


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
