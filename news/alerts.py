"""A claimed delivery as the message it sends, and a digest's lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from news.briefs import adjusted_level
from news.digest import Entry
from news.language import is_rtl
from news.render import SourceRef, Translate, render_brief
from storage import briefs, deliveries, items, subscriptions
from storage.db import session_scope


@dataclass(frozen=True)
class Alert:
    """A rendered alert and the level that decides whether it goes now or in the digest."""

    level: int
    html: str
    sources: int = 0  # how many sources it lists: one that joins later calls for an edit


def render_delivery(engine: Engine, claimed: deliveries.Claimed, t: Translate) -> Alert:
    """The message a claimed delivery sends: its stored brief, with its chat's topics."""
    with session_scope(engine) as session:
        stored = briefs.get(session=session, story_id=claimed.story_id, language=claimed.language)
        story_items = items.of_story(session=session, story_id=claimed.story_id)
        pinned = subscriptions.pinned_among(session=session, chat_id=claimed.chat_id,
                                            thread_id=claimed.thread_id, topics=claimed.topics)
    assert stored is not None, "claim() only returns deliveries whose brief exists"
    brief, origin = stored
    refs = [SourceRef(item.source_name, item.link, item.published_at or item.fetched_at)
            for item in story_items]
    level = adjusted_level(brief, origin, claimed.topics, pinned=bool(pinned))
    return Alert(level, render_brief(brief, origin=origin, level=level, topics=claimed.topics,
                                     sources=refs, t=t, rtl=is_rtl(claimed.language)),
                 len(story_items))


def digest_entries(
    engine: Engine, language: str, rows: Sequence[deliveries.DigestRow]
) -> list[Entry]:
    """Digest lines: the brief's headline and level where written, else the story's title;
    a story of a topic the chat tracks closely is level 1, under that topic."""
    entries = []
    # A story that matched several topics goes under the narrowest of them (the one with the
    # fewest stories here), so a broad topic does not swallow a narrow topic's only story.
    sizes = Counter(topic for row in rows for topic in set(row.topics))
    with session_scope(engine) as session:
        pins = subscriptions.pinned_topics(session=session, delivery_ids=[row.id for row in rows])
        for row in rows:
            stored = briefs.get(session=session, story_id=row.story_id, language=language)
            first = items.of_story(session=session, story_id=row.story_id)[:1]
            pinned = pins.get(row.id, [])
            headline, level = row.title, 1 if pinned else 3
            if stored is not None:
                brief, origin = stored
                headline = brief.headline
                level = adjusted_level(brief, origin, row.topics, pinned=bool(pinned))
            candidates = pinned or row.topics
            topic = min(candidates, key=lambda t: (sizes[t], candidates.index(t))) \
                if candidates else ""
            entries.append(Entry(topic, level, headline, first[0].link if first else "",
                                 row.created_at, pinned=bool(pinned)))
    return entries
