"""A replica whose clock is off (issue 20.6): on PostgreSQL every time other replicas compare
(due times, leases, claims, next polls) is the database's, so one replica two hours ahead
delays nothing; start-up warns about the skew. Each test runs code as such a replica by
skewing storage.models.process_clock, the one function the process clock is read through."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import Engine, func, update
from sqlmodel import col, select

import storage.models
from handlers.why import not_delivered
from jobs import deliver
from locales import catalog
from news import choices
from news.briefing import write_missing_briefs
from news.briefs import BriefWriter
from news.embeddings import Embedder
from news.newsroom import Newsroom
from news.poll import poll_due
from news.preview import preview
from news.schedule import Preferences, digest_moment
from services import KEY
from storage import feedback, sources, stats, usage
from storage.db import check_clock, database_now, session_scope
from storage.locks import Keys, Role
from storage.models import Chat, Delivery, Item, Source, system_clock
from tests.conftest import REPO, BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.harness import (
    LOOPBACK,
    TOKEN,
    env_for,
    http_client,
    in_session,
    queue_stories,
    run_job,
    say,
    store_source,
)

AHEAD = timedelta(hours=2)
CLOSE = timedelta(seconds=30)  # "at the database's time": well under the skew, over any stall


@pytest.fixture
def skew(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], object]:
    """Run what follows as a replica whose clock is off by `by`; `skew(timedelta(0))` undoes it."""

    def set_skew(by: timedelta) -> object:
        monkeypatch.setattr(storage.models, "process_clock", lambda: system_clock() + by)
        return None

    return set_skew


@contextmanager
def ahead(skew: Callable[[timedelta], object]) -> Iterator[None]:
    skew(AHEAD)
    try:
        yield
    finally:
        skew(timedelta(0))


@pytest.fixture
def pg_engine(database_url: str, engine: Engine) -> Engine:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serves one process: its clock is the only one there is")
    return engine


def now_in(engine: Engine) -> datetime:
    with session_scope(engine) as session:
        return database_now(session)


def test_database_now_is_the_servers_on_postgresql_and_the_process_s_on_sqlite(
    database_url: str, engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    with ahead(skew):
        offset = now_in(engine) - system_clock()
    if database_url.startswith("postgresql"):
        assert abs(offset) < CLOSE
    else:
        assert abs(offset - AHEAD) < CLOSE


def test_alerts_queued_by_a_replica_two_hours_ahead_are_sent_at_once(
    pg_engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    with ahead(skew):
        queue_stories(pg_engine, ["SoftBank buys a chip maker in Oregon"])
        asyncio.run(write_missing_briefs(pg_engine, BriefWriter(None, "offline")))
    role = Role(pg_engine, Keys.of(pg_engine).sending, "sending")
    with BotApiEmulator() as telegram:
        for user_id in (1, 2):
            telegram.private_chat(telegram.user(user_id, "Ada"))
        run_job(deliver.run, pg_engine, telegram, sending=role)
        assert len(telegram.messages(1)) == 1 and len(telegram.messages(2)) == 1, \
            "due now, not in two hours"
    role.release()


def test_a_sender_two_hours_ahead_leases_and_stamps_by_the_databases_clock(
    pg_engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    queue_stories(pg_engine, ["SoftBank buys a chip maker in Oregon"])
    asyncio.run(write_missing_briefs(pg_engine, BriefWriter(None, "offline")))
    role = Role(pg_engine, Keys.of(pg_engine).sending, "sending")
    with BotApiEmulator() as telegram, ahead(skew):
        for user_id in (1, 2):
            telegram.private_chat(telegram.user(user_id, "Ada"))
        run_job(deliver.run, pg_engine, telegram, sending=role)
        assert len(telegram.messages(1)) == 1 and len(telegram.messages(2)) == 1
    role.release()
    with session_scope(pg_engine) as session:
        rows = session.exec(select(Delivery)).all()
    now = now_in(pg_engine)
    assert rows and all(row.sent_at is not None and abs(row.sent_at - now) < CLOSE
                        for row in rows), "sent at the database's time, not two hours on"


def test_a_source_added_by_a_replica_two_hours_ahead_is_due_after_its_interval(
    pg_engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    with ahead(skew), session_scope(pg_engine) as session:
        source = sources.add(session=session, url="http://wire.test/feed", name="wire",
                             interval_seconds=60)
        next_poll = source.next_poll_at
    assert next_poll - now_in(pg_engine) < timedelta(seconds=60) + CLOSE


def test_a_source_polled_by_a_replica_two_hours_ahead_is_next_polled_after_its_interval(
    pg_engine: Engine, skew: Callable[[timedelta], object], feeds: FeedServer,
) -> None:
    feeds.put("/wire", rss("Wire", [{"title": "SoftBank buys a chip maker", "guid": "g1",
                                     "link": "http://wire.test/1"}]))
    due = store_source(pg_engine, feeds.url("/wire"), "wire")
    with session_scope(pg_engine) as session:
        sources.poll_now(session=session, source_id=due.id)
    room = Newsroom(pg_engine)

    async def poll() -> int:
        async with http_client() as client:
            return len(await poll_due(room, client, LOOPBACK, full_text=False))

    with ahead(skew):
        assert asyncio.run(poll()) == 1, "due now, by the database's clock"
    room.close()
    with session_scope(pg_engine) as session:
        row = session.get(Source, due.id)
        assert row is not None and row.last_ok_at is not None
        next_poll = row.next_poll_at
    assert next_poll - now_in(pg_engine) < timedelta(seconds=3600) + CLOSE, \
        "an interval away, not two hours more"


def test_start_up_warns_when_the_process_clock_is_off_the_databases(
    pg_engine: Engine, skew: Callable[[timedelta], object], caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "storage.db"):
        assert abs(check_clock(pg_engine)) < CLOSE
        assert caplog.records == [], "a clock in step says nothing"
        with ahead(skew):
            assert abs(check_clock(pg_engine) - AHEAD) < CLOSE
    [warning] = caplog.records
    assert "7200 s ahead of the database's" in warning.getMessage()


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server




def test_tokens_spent_on_a_replica_a_day_ahead_count_in_todays_budget(
    pg_engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    """The daily token budget is shared: a replica whose clock is past midnight must not
    spend into a day the others have not reached (and so past the budget)."""
    skew(timedelta(days=1))
    with session_scope(pg_engine) as session:
        usage.record_calls(session=session, calls=1, failures=0, tokens_in=700, tokens_out=300)
    skew(timedelta(0))
    with session_scope(pg_engine) as session:
        assert usage.spent(session=session) == 1000
        assert usage.over_budget(session=session, budget=1000)


def skewed_clock(tmp_path: Path, by: timedelta) -> Path:
    """A folder whose sitecustomize skews the process clock of a bot run with it on its
    PYTHONPATH: bot.py as run, on a host whose clock is off."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(
        "from datetime import timedelta\n"
        "import storage.models as models\n"
        "models.process_clock = lambda: models.system_clock() + "
        f"timedelta(seconds={by.total_seconds()})\n")
    return shim


def test_a_bot_whose_clock_runs_ahead_warns_at_start_up(
    pg_engine: Engine, database_url: str, tmp_path: Path, bot_process: type[BotProcess],
) -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:not-a-real-token", "TELEGRAM_API_URL": "http://127.0.0.1:9",
           "DATABASE_URL": database_url,
           "PYTHONPATH": f"{skewed_clock(tmp_path, AHEAD)}{os.pathsep}{REPO}"}
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Tidings starting")
    bot.kill()
    assert "this process's clock is 7200 s ahead of the database's" in bot.log, bot.log


def test_why_on_a_replica_a_day_ahead_names_the_next_digest_by_the_databases_day(
    pg_engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    queue_stories(pg_engine, ["SoftBank buys a chip maker in Oregon"])
    with session_scope(pg_engine) as session:
        chat = session.get(Chat, 1)
        assert chat is not None
        chat.mode, chat.digest_time = "digest", "08:00"
        session.execute(update(Delivery).where(col(Delivery.chat_id) == 1)
                        .values(state="digest"))
    prefs = Preferences(mode="digest", digest_time="08:00", timezone=chat.timezone)
    coming = digest_moment(prefs, now_in(pg_engine)) + timedelta(days=1)
    context = cast(Any, SimpleNamespace(bot_data={KEY: SimpleNamespace(
        engine=pg_engine, catalog=catalog, embedder=Embedder(None, ""),
        delivery_retention=None)}))
    skew(timedelta(days=1))
    said = in_session(pg_engine, not_delivered, context=context, language="en", chat_id=1,
                      thread_id=0, link="http://wire.test/0")
    assert f"{coming:%Y-%m-%d} 08:00" in said, said


def test_digest_on_a_bot_two_hours_ahead_covers_the_last_24_hours(
    pg_engine: Engine, database_url: str, tmp_path: Path, bot_process: type[BotProcess],
) -> None:
    """/digest reaches 24 hours back by the database's clock, which stamped the alerts."""
    queue_stories(pg_engine, ["SoftBank buys a chip maker in Oregon"])
    with session_scope(pg_engine) as session:
        session.execute(update(Delivery).values(
            state="sent", created_at=func.now() - timedelta(hours=23)))
    with BotApiEmulator(token=TOKEN) as telegram:
        env = env_for(telegram, database_url) | {
            "PYTHONPATH": f"{skewed_clock(tmp_path, AHEAD)}{os.pathsep}{REPO}",
            "SEARCH_PROVIDERS": ""}
        bot = bot_process(tmp_path, env).start()
        user = telegram.user(1, "Ada")
        chat = telegram.private_chat(user)
        assert "SoftBank buys a chip maker in Oregon" in say(telegram, chat, user, "/digest")
        bot.kill()


def test_stats_and_previews_on_a_replica_a_day_ahead_count_the_databases_today(
    pg_engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    """Stories and alerts are stamped by the database's clock; what one replica counts as
    today, or as the last week, must be the same day and week."""
    queue_stories(pg_engine, ["SoftBank buys a chip maker in Oregon"])
    with session_scope(pg_engine) as session:  # a week and a little ago, by the database
        session.execute(update(Item).values(fetched_at=func.now() - timedelta(days=7, hours=1)))
    skew(timedelta(days=-1))  # a day behind: it would still see last week's item
    assert in_session(pg_engine, preview, query="SoftBank").count == 0
    with session_scope(pg_engine) as session:
        session.execute(update(Item).values(fetched_at=func.now()))
    skew(timedelta(days=1))  # a day ahead: today's story would be yesterday's
    with session_scope(pg_engine) as session:
        assert stats.today(session=session).stories == 1
    assert in_session(pg_engine, preview, query="SoftBank").count == 1


def test_feedback_given_on_a_replica_a_day_behind_counts_today(
    pg_engine: Engine, skew: Callable[[timedelta], object],
) -> None:
    queue_stories(pg_engine, ["SoftBank buys a chip maker in Oregon"])
    skew(timedelta(days=-1))
    with session_scope(pg_engine) as session:
        delivery = session.exec(select(Delivery).where(Delivery.chat_id == 1)).one()
        assert feedback.vote(session=session, delivery=delivery, user_id=1, value="up") == "added"
        [irrelevant] = [choice for choice in feedback.offer(
            session=session, delivery=delivery, terms=[], max_sources=0)
            if choice.kind == "irrelevant"]
        choices.apply(session=session, choice=irrelevant, delivery=delivery)
    skew(timedelta(0))
    with session_scope(pg_engine) as session:
        counted = feedback.totals(session=session, since=stats.midnight(session=session))
        assert (counted.up, counted.irrelevant) == (1, 1)
        assert feedback.topic_votes(session=session, subscription_ids=[1],
                                    since=database_now(session) - timedelta(hours=1)) \
            == {1: (1, 0)}
