"""A claimed batch of deliveries rendered at once: each brief read, and each message rendered,
once per story, language, topics and level, however many chats it goes to (issue 24).

Rendering one delivery at a time read the brief, the story's sources and the chat's pins in a
transaction of its own and rendered the same message again for every chat: most of a
fan-out's CPU. A fan-out's chats mostly share a language and the topic that matched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlmodel import Session

from news.briefs import Brief, adjusted_level
from news.language import is_rtl
from news.render import SourceRef, Translate, render_brief
from storage import briefs, deliveries, items, subscriptions


@dataclass(frozen=True)
class Rendered:
    """A rendered alert: the level decides whether it goes now or waits (news.schedule)."""

    level: int
    html: str
    sources: int  # how many sources it lists: one that joins later calls for an edit


def render_claimed(
    *, session: Session, claimed: Sequence[deliveries.Claimed],
    translate: Callable[[str], Translate],
) -> list[Rendered | Exception]:
    """Each claimed row's alert, in order; a row whose brief cannot be read gets the error
    instead, and only it fails. `translate(language)` gives that language's catalogue."""
    pins = subscriptions.pinned_topics(session=session, delivery_ids=[c.id for c in claimed])
    stored: dict[tuple[int, str], tuple[Brief, str] | Exception] = {}
    refs: dict[int, list[SourceRef]] = {}
    rendered: dict[tuple[int, str, tuple[str, ...], int], Rendered] = {}
    out: list[Rendered | Exception] = []
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
            rendered[shape] = Rendered(level, render_brief(
                written, origin=origin, level=level, topics=item.topics, sources=sources,
                t=translate(item.language), rtl=is_rtl(item.language)), len(sources))
        out.append(rendered[shape])
    return out
