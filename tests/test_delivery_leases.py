"""Leases that hold (issue 12.3): a claimed row is sent once, however long its chat's queue.

The real bot's numbers make this a minutes-long test (25 alerts for one group take 76 s, the
lease is 60 s), so the bot's own delivery pass runs here with every number of jobs.pacing
scaled down together: 30 alerts at one per 0.2 s take 6 s, three times a 2 s lease.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine
from telegram.ext import ApplicationBuilder, CallbackContext

import jobs.throttle
from jobs.deliver import deliver_due
from jobs.outbound import Outbound
from jobs.pacing import Pacing
from jobs.throttle import PerChat
from locales import catalog
from news.briefs import Brief, Written
from storage import briefs, chats, deliveries, subscriptions
from storage.db import database_now, session_scope
from storage.models import Item, Story
from telegram_link import DEFAULTS
from tests.fakes.telegram import BotApiEmulator

GROUP = -1_000_123
ALERTS = 30
PACING = Pacing(lease=timedelta(seconds=2), in_flight=4, queued=4, group_period=0.2,
                chat_period=0.05, send_time=0.5, record_gather=0.2)


def queue_alerts(engine: Engine) -> None:
    """30 stories matched by one group, each with its brief: all due at once."""
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=GROUP, chat_type="supergroup", title="Desk",
                          language="en")
        subscription = subscriptions.add(session=session, chat_id=GROUP, query="harvest")
        assert subscription is not None and subscription.id is not None
        for n in range(ALERTS):
            story = Story(title=f"Harvest {n}")
            session.add(story)
            session.flush()
            assert story.id is not None
            session.add(Item(source_name="Farm News", story_id=story.id, guid=f"h{n}",
                             link=f"http://news.test/h{n}", title=story.title, summary="s"))
            brief = Brief(headline=f"Harvest alert {n}", core_point="c", tracking_level=2)
            briefs.save(session=session, story_id=story.id, language="en",
                        written=Written(brief, "offline"))
            deliveries.enqueue_matches(session=session, matches={story.id: {subscription.id}})


def test_the_scaled_numbers_reproduce_a_queue_longer_than_the_lease() -> None:
    queue_time = ALERTS * PACING.group_period
    assert queue_time > 2 * PACING.lease.total_seconds()
    assert PACING.cap(GROUP) * PACING.group_period < PACING.lease.total_seconds()
    with pytest.raises(ValueError, match="cannot cover"):
        Pacing(lease=timedelta(seconds=3), group_period=5.0)


@pytest.mark.asyncio
async def test_30_alerts_queued_for_one_group_are_delivered_exactly_once(
    engine: Engine,
) -> None:
    queue_alerts(engine)
    with BotApiEmulator() as telegram:
        telegram.group(GROUP, "Desk", supergroup=True)
        application = (
            ApplicationBuilder().token(telegram.token).base_url(f"{telegram.base_url}/bot")
            .defaults(DEFAULTS)
            .rate_limiter(Outbound(group_period=PACING.group_period))
            .build()
        )
        svc = SimpleNamespace(engine=engine, catalog=catalog, stopping=asyncio.Event())
        limiter = PerChat(PACING)
        async with application:
            context = CallbackContext(application)
            started = time.monotonic()
            # the job's ticks, until every alert went out and two more leases passed
            quiet_until = None
            while quiet_until is None or time.monotonic() < quiet_until:
                await deliver_due(context, svc, PACING, limiter)  # type: ignore[arg-type]
                if quiet_until is None and len(telegram.messages(GROUP)) >= ALERTS:
                    quiet_until = time.monotonic() + 2 * PACING.lease.total_seconds()
                assert time.monotonic() - started < 60, "the alerts never all went out"
                await asyncio.sleep(0.1)
        sent = Counter(re.findall(r"Harvest alert \d+", m.text)[0]
                       for m in telegram.messages(GROUP))
        assert len(sent) == ALERTS and set(sent.values()) == {1}, sent
        assert telegram.rejected == []
    with session_scope(engine) as session:
        assert deliveries.count_sent_since(
            session=session, since=database_now(session) - timedelta(hours=1)) == ALERTS


class Clock:
    """Virtual time for jobs.throttle: a sleep moves it on by what was asked, so the spacing
    is checked exactly, on no real clock. Sleeps run one after another, which is all the
    scenario below needs."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)  # let the others run, as a real sleep would


@pytest.mark.asyncio
async def test_a_chats_next_send_starts_its_period_after_the_previous_one_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A send let through may still wait inside the request (PTB's overall limiter, the
    network): spaced from when it was let through, the next one to that chat could reach
    Telegram right behind it, a 429 (the replica test saw them)."""
    clock = Clock()
    monkeypatch.setattr(jobs.throttle, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(jobs.throttle, "asyncio",
                        SimpleNamespace(Lock=asyncio.Lock, sleep=clock.sleep))
    limiter = PerChat(Pacing(chat_period=0.2))
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    events: list[str] = []

    async def send(name: str, chat_id: int, held: float) -> None:
        async with limiter(chat_id):
            started[name] = clock.now
            events.append(f"{name} started")
            await clock.sleep(held)  # the request, waiting for its turn overall
            ended[name] = clock.now
            events.append(f"{name} ended")

    await asyncio.gather(send("first", 7, 0.3), send("second", 7, 0.0), send("other", 8, 0.0))
    assert started["second"] - ended["first"] == pytest.approx(0.2)  # a period after its end
    assert events.index("other started") < events.index("first ended"), \
        "another chat does not wait for this one"
