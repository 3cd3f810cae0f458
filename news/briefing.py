"""Briefs the due deliveries wait on, written once per story and language across replicas."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from news.briefs import BriefWriter, StoryText, Written, offline_brief
from news.text import without_headline
from storage import briefs, deliveries, items, subscriptions, usage
from storage.db import db


def story_text(*, session: Session, story_id: int, language: str = "") -> StoryText:
    story_items = items.of_story(session=session, story_id=story_id)
    topics = deliveries.topics_of_story(session=session, story_id=story_id)
    pinned = bool(language) and subscriptions.story_pinned(
        session=session, story_id=story_id, language=language)
    first = story_items[0]
    # an article page's text opens with its <h1>, some feeds' with the title: said once is enough
    text = without_headline(first.summary, first.title)
    return StoryText(title=first.title, text=text, source_count=len(story_items),
                     published=first.published_at or first.fetched_at,  # as alerts show it
                     topics=tuple(topics), pinned=pinned)


@dataclass(frozen=True)
class BriefRound:
    """What one round of brief writing did, and whether admins must hear the budget ran out."""

    written: int
    budget_exhausted: bool


async def write_missing_briefs(
    engine: Engine, writer: BriefWriter, *, daily_token_budget: int = 0,
    lease: timedelta | None = None,
) -> BriefRound:
    """Write each brief a due delivery waits on, once per story and language across every
    replica (each is claimed first), side by side.

    Past the daily token budget the offline brief is used until midnight UTC.
    """
    missing, over, notify = await db(engine, _briefs_wanted, budget=daily_token_budget)
    # Claimed only as the writer can start them, so the lease covers one write, not a queue.
    claim_for = lease or writer.longest_write
    starting = asyncio.Semaphore(writer.concurrency)
    written: list[tuple[int, str]] = []

    async def one(story_id: int, language: str) -> None:
        async with starting:
            if not await db(engine, briefs.claim, story_id=story_id, language=language,
                            lease=claim_for):
                return  # another replica writes it, or wrote it
            try:
                brief = await write(story_id, language)
            except BaseException:
                await db(engine, briefs.release, story_id=story_id, language=language)
                raise
            await db(engine, _save_brief, story_id=story_id, language=language, brief=brief)
            written.append((story_id, language))

    async def write(story_id: int, language: str) -> Written:
        story = await db(engine, story_text, story_id=story_id, language=language)
        if over:
            return Written(offline_brief(story), "offline")
        return await writer.write(story, language, story_id=story_id)

    await asyncio.gather(*(one(story_id, language) for story_id, language in missing))
    return BriefRound(len(written), notify)


def _briefs_wanted(*, session: Session, budget: int
                   ) -> tuple[list[tuple[int, str]], bool, bool]:
    """The briefs due deliveries wait on; whether the day's token budget is spent; and whether
    this replica is the one to tell the admins so (once a day)."""
    missing = deliveries.briefs_missing(session=session)
    over = bool(budget) and usage.spent(session=session) >= budget
    return missing, over, over and bool(missing) and usage.claim_budget_notice(session=session)


def _save_brief(*, session: Session, story_id: int, language: str, brief: Written) -> None:
    """The brief and what it cost, in one transaction: usage never counts an unsaved brief."""
    briefs.save(session=session, story_id=story_id, language=language, written=brief)
    usage.record(session=session, written=brief)
