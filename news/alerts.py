"""A claimed delivery as the message it sends, and a digest's lines.

A claimed batch is rendered at once (render_claimed): each brief read, and each message
rendered, once per story, language, topics and level, however many chats it goes to (issue
24). Rendering one delivery at a time read the brief, the story's sources and the chat's pins
in a transaction of its own and rendered the same message again for every chat: most of a
fan-out's CPU. A fan-out's chats mostly share a language and the topic that matched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlmodel import Session

from news.briefs import Brief, adjusted_level
from news.digest import Entry
from news.language import is_rtl
from news.render import SourceRef, Translate, render_brief
from storage import briefs, deliveries, items, subscriptions


@dataclass(frozen=True)
class Alert:
    """A rendered alert and the level that decides whether it goes now or in the digest."""

    level: int
    html: str
    sources: int = 0  # how many sources it lists: one that joins later calls for an edit


def render_delivery(*, session: Session, claimed: deliveries.Claimed, t: Translate) -> Alert:
    """The message a claimed delivery sends: its stored brief, with its chat's topics."""
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
    *, session: Session, language: str, rows: Sequence[deliveries.DigestRow]
) -> list[Entry]:
    """Digest lines: the brief's headline and level where written, else the story's title;
    a story of a topic the chat tracks closely is level 1, under that topic."""
    entries = []
    # A story that matched several topics goes under the narrowest of them (the one with the
    # fewest stories here), so a broad topic does not swallow a narrow topic's only story.
    sizes = Counter(topic for row in rows for topic in set(row.topics))
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


def render_claimed(
    *, session: Session, claimed: Sequence[deliveries.Claimed],
    translate: Callable[[str], Translate],
) -> list[Alert | Exception]:
    """Each claimed row's alert, in order; a row whose brief cannot be read gets the error
    instead, and only it fails. `translate(language)` gives that language's catalogue."""
    pins = subscriptions.pinned_of(session=session, rows=[
        (c.id, c.chat_id, c.thread_id, c.topics) for c in claimed])
    stored: dict[tuple[int, str], tuple[Brief, str] | Exception] = {}
    refs: dict[int, list[SourceRef]] = {}
    rendered: dict[tuple[int, str, tuple[str, ...], int], Alert] = {}
    out: list[Alert | Exception] = []
    for item in claimed:
        key = (item.story_id, item.language)
        if key not in stored:
            try:
                found = briefs.get(session=session, story_id=item.story_id,
                                   language=item.language)
                stored[key] = found if found is not None else LookupError(f"no brief: {key}")
            except Exception as error:  # an unreadable stored brief fails its rows only
                stored[key] = error
        brief = stored[key]
        if isinstance(brief, Exception):
            out.append(brief)
            continue
        if item.story_id not in refs:
            refs[item.story_id] = [
                SourceRef(row.source_name, row.link, row.published_at or row.fetched_at)
                for row in items.of_story(session=session, story_id=item.story_id)]
        written, origin = brief
        level = adjusted_level(written, origin, item.topics, pinned=bool(pins.get(item.id)))
        shape = (item.story_id, item.language, tuple(item.topics), level)
        if shape not in rendered:
            sources = refs[item.story_id]
            rendered[shape] = Alert(level, render_brief(
                written, origin=origin, level=level, topics=item.topics, sources=sources,
                t=translate(item.language), rtl=is_rtl(item.language)), len(sources))
        out.append(rendered[shape])
    return out
