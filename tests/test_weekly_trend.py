"""The digest job carries the week's chart once a week, only where a chat turned it on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import Engine
from telegram.ext import ExtBot

from jobs import digest
from jobs.trend import send_weekly_trend
from locales import catalog
from news.aliases import AliasFinder
from news.briefs import BriefWriter
from news.fetch import FetchPolicy
from news.newsroom import Newsroom
from services import KEY, Services
from storage import chats
from storage.db import session_scope
from storage.locks import Keys, Role
from storage.models import Chat, Delivery, Item, Story, Subscription, utcnow
from telegram_link import DEFAULTS
from tests.fakes.telegram import BotApiEmulator


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[BotApiEmulator]:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # PTB 22 warns without it
    with BotApiEmulator() as emulator:
        yield emulator


def held_story(engine: Engine, chat_id: int, title: str) -> None:
    """A SoftBank story held for the chat's digest."""
    with session_scope(engine) as session:
        story = Story(title=title)
        session.add(story)
        session.flush()
        assert story.id is not None
        session.add(Item(source_name="S", story_id=story.id, guid=title, link=f"http://x/{title}",
                         title=title, summary="Text."))
        session.add(Delivery(chat_id=chat_id, story_id=story.id, topics=json.dumps(["SoftBank"]),
                             state="digest"))


def setup_chat(engine: Engine, chat_id: int, *, weekly: bool) -> None:
    with session_scope(engine) as session:
        session.add(Chat(id=chat_id, type="private", language="en", mode="digest",
                         weekly_trend=weekly, last_digest_at=utcnow() - timedelta(days=2)))
        session.flush()
        session.add(Subscription(chat_id=chat_id, query="SoftBank"))


@pytest.mark.asyncio
async def test_the_digest_carries_the_weeks_chart_once_a_week(
    engine: Engine, emu: BotApiEmulator
) -> None:
    for chat_id, weekly in ((501, True), (502, False)):
        emu.private_chat(emu.user(chat_id, "R"))
        setup_chat(engine, chat_id, weekly=weekly)
        held_story(engine, chat_id, f"SoftBank news for {chat_id}")
    async with httpx.AsyncClient() as http:
        svc = Services(engine=engine, http=http, fetch_policy=FetchPolicy(),
                       writer=BriefWriter(None, "m"), aliases=AliasFinder(None, "m"),
                       catalog=catalog, admin_ids=frozenset(), default_language="en",
                       poll_interval_seconds=600, newsroom=Newsroom(engine),
                       sending=Role(engine, Keys.of(engine).sending, "sending"))
        bot = ExtBot(emu.token, base_url=f"{emu.base_url}/bot", defaults=DEFAULTS)
        async with bot:
            context = cast(Any, SimpleNamespace(bot=bot, bot_data={KEY: svc}))
            try:
                await digest.run(context)
            finally:
                svc.sending.release()
                svc.newsroom.close()

            on, off = emu.messages(501), emu.messages(502)
            assert [m.method for m in on] == ["sendMessage", "sendPhoto"]
            assert [m.method for m in off] == ["sendMessage"], "off by default"
            assert "SoftBank: stories matched in the last 7 days: 2." in on[1].text
            assert on[1].document is not None and on[1].document.startswith(b"\x89PNG")

            with session_scope(engine) as session:
                chat = chats.get(session=session, chat_id=501)
                assert chat is not None and chat.weekly_trend_at is not None
                assert await send_weekly_trend(context, svc, chat, utcnow()) == 0, "sent"
                chat.weekly_trend_at = utcnow() - timedelta(days=7)  # a week later
            assert await send_weekly_trend(context, svc, chat, utcnow()) == 1
            assert [m.method for m in emu.messages(501)][-1] == "sendPhoto"
