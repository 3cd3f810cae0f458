"""Topics pinned as 重点追踪: the level per delivery, digest order, and the brief's prompt."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from sqlalchemy import Engine

from locales import catalog
from news.alerts import digest_entries, render_delivery
from news.briefing import write_missing_briefs
from news.briefs import Brief, BriefWriter, Written, adjusted_level, brief_schema, system_prompt
from news.digest import Entry, render_digest
from news.ingest import ingest
from news.items import ItemDraft
from news.newsroom import Newsroom
from storage import briefs, chats, deliveries, sources, subscriptions
from storage.db import session_scope
from storage.models import utcnow
from storage.sources import DueSource
from tests.fakes.llm import LlmServer
from tests.fakes.telegram_html import parse_html
from tests.harness import in_session

T0 = datetime(2026, 11, 24, tzinfo=UTC)
LEASE = timedelta(minutes=5)
LEVEL_3 = Brief(headline="SoftBank sells a stake", core_point="SoftBank sold a small stake.",
                tracking_level=3, tracking_reason="A routine sale.")


def entry(topic: str, level: int, headline: str, pinned: bool = False, minutes: int = 0) -> Entry:
    return Entry(topic, level, headline, f"http://news.test/{headline}",
                 T0 + timedelta(minutes=minutes), pinned=pinned)


@pytest.mark.parametrize(("origin", "level"), [("llm", 3), ("llm", 2), ("offline", 3)])
def test_a_pin_makes_the_level_one_whatever_the_brief_says(origin: str, level: int) -> None:
    brief = LEVEL_3.model_copy(update={"tracking_level": level})
    assert adjusted_level(brief, origin, ["Nvidia"], pinned=True) == 1
    assert adjusted_level(brief, origin, ["Nvidia"]) == level, "unpinned: the brief's level"


def test_digest_lists_level_one_first_and_pinned_topics_first_within_it() -> None:
    entries = [entry("Apple", 1, "apple-top"), entry("Zeta", 1, "zeta-pinned", pinned=True),
               entry("Apple", 2, "apple-mid"), entry("Beta", 2, "beta-mid"),
               entry("Zeta", 1, "zeta-pinned-newer", pinned=True, minutes=5)]
    [message] = render_digest(entries, "<b>Digest</b>")
    text = parse_html(message)
    assert text.index("📌 Zeta") < text.index("Apple") < text.index("Beta"), text
    assert text.index("zeta-pinned-newer") < text.index("zeta-pinned\n"), "newest first"
    assert "📌 Apple" not in text and "📌 Beta" not in text


def make_chat(engine: Engine, chat_id: int, language: str) -> None:
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                          language=language)


def follow(engine: Engine, chat_id: int, query: str, *, thread_id: int = 0,
           pinned: bool = False) -> None:
    with session_scope(engine) as session:
        assert subscriptions.add(session=session, chat_id=chat_id, query=query,
                                 thread_id=thread_id, pinned=pinned)


def one_story(room: Newsroom, title: str = "SoftBank sells a stake") -> int:
    engine = room.engine
    with session_scope(engine) as session:
        source = sources.add(session=session, url="http://feeds.test/a.xml", name="A",
                             interval_seconds=60)
        assert source.id is not None
        due = DueSource(source.id, source.url, source.name, None, None)
    draft = ItemDraft(guid="g1", link="http://news.test/g1", title=title, summary=title,
                      published_at=None)
    assert ingest(room, due, [draft]) == 1
    with session_scope(engine) as session:
        rows = deliveries.for_digest(session=session, chat_id=1, since=None, held_only=False)
    return rows[0].story_id


def t_en(key: str, **values: Any) -> str:
    return catalog.text("en", key, **values)


def test_the_level_is_per_chat_and_follows_the_pin(engine: Engine, room: Newsroom) -> None:
    """Three chats follow one story; only the one that pinned its topic sees 🔴, in alerts and
    digests, and unpinning gives it the brief's level back."""
    for chat_id in (1, 2, 3):
        make_chat(engine, chat_id, "en")
    follow(engine, 1, "SoftBank", pinned=True)
    follow(engine, 2, "SoftBank")
    follow(engine, 3, "SoftBank")  # a forum: pinned in thread 7 only
    follow(engine, 3, "SoftBank", thread_id=7, pinned=True)
    story_id = one_story(room)
    with session_scope(engine) as session:
        briefs.save(session=session, story_id=story_id, language="en",
                    written=Written(LEVEL_3, "llm"))
        claimed = deliveries.claim(session=session, now=utcnow(), lease=LEASE)
    def render(claimed: deliveries.Claimed) -> Any:
        return in_session(engine, render_delivery, claimed=claimed, t=t_en)

    shown = {(c.chat_id, c.thread_id): parse_html(render(c).html)
             for c in claimed}
    assert shown[(1, 0)].startswith("🔴 Track closely · SoftBank")
    assert shown[(2, 0)].startswith("⚪ For information · SoftBank")
    assert shown[(3, 0)].startswith("⚪ For information")
    assert shown[(3, 7)].startswith("🔴 Track closely")
    levels = {c.chat_id * 100 + c.thread_id: render(c).level
              for c in claimed}
    assert levels == {100: 1, 200: 3, 300: 3, 307: 1}

    def digest_of(chat_id: int) -> list[Entry]:
        with session_scope(engine) as session:
            rows = deliveries.for_digest(session=session, chat_id=chat_id, since=None,
                                         held_only=False)
        return in_session(engine, digest_entries, language="en", rows=rows)

    assert [(e.level, e.pinned) for e in digest_of(1)] == [(1, True)]
    assert [(e.level, e.pinned) for e in digest_of(2)] == [(3, False)]

    with session_scope(engine) as session:
        [row] = subscriptions.for_chat(session=session, chat_id=1)
        subscriptions.set_pinned(session=session, subscription=row, pinned=False)
    mine = next(c for c in claimed if c.chat_id == 1)
    assert render(mine).level == 3, "unpinned: the brief's level again"
    assert [(e.level, e.pinned) for e in digest_of(1)] == [(3, False)]


def test_the_prompt_mentions_close_tracking_only_with_a_pin() -> None:
    schema = brief_schema()
    assert "tracks this story's topic closely" in system_prompt("zh", schema, pinned=True)
    assert "closely" not in system_prompt("zh", schema).replace("1 = track closely", "")


@pytest.mark.asyncio
async def test_a_brief_is_asked_for_close_tracking_where_its_readers_pinned_the_topic(
    engine: Engine, room: Newsroom,
) -> None:
    """One story read in two languages: the zh reader pinned it, the en reader did not; one
    request per language, and only the zh one carries the note."""
    make_chat(engine, 1, "zh")
    make_chat(engine, 2, "en")
    follow(engine, 1, "SoftBank", pinned=True)
    follow(engine, 2, "SoftBank")
    one_story(room)
    with LlmServer() as llm:
        llm.responder = lambda request: json.dumps(LEVEL_3.model_dump())
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="k", max_retries=0)
        async with client:
            await write_missing_briefs(engine, BriefWriter(client, "tiny", retry_delay=0))
        prompts = {("Chinese" if "in Chinese" in r["messages"][0]["content"] else "English"):
                   r["messages"][0]["content"] for r in llm.requests}
    assert set(prompts) == {"Chinese", "English"}
    assert "tracks this story's topic closely" in prompts["Chinese"]
    assert "tracks this story's topic closely" not in prompts["English"]
