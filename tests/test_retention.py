"""Old deliveries are deleted (storage.retention, jobs.retention): only rows nothing reads
again, a batch a transaction, and never a row someone voted on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import select

from jobs import retention as job
from settings import Settings
from storage import retention
from storage.db import database_now, make_engine, migrate, session_scope
from storage.locks import Keys, Role
from storage.models import Delivery, FeedbackChoice, Story, Vote
from tests.fakes.telegram import BotApiEmulator
from tests.harness import make_chat, run_job

KEEP = timedelta(days=60)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    make_chat(engine, 1)
    yield engine
    engine.dispose()


@pytest.fixture
def sending(engine: Engine) -> Iterator[Role]:
    """The sending role, held by the test's replica: only its holder deletes."""
    role = Role(engine, Keys.of(engine).sending, "sending")
    yield role
    role.release()


def prune(engine: Engine, sending: Role | object, keep: timedelta | None = KEEP) -> None:
    with BotApiEmulator() as telegram:
        run_job(job.run, engine, telegram, delivery_retention=keep, sending=sending)


def row(engine: Engine, *, days_ago: float, state: str = "sent", vote: bool = False,
        choice: bool = False) -> int:
    """A delivery of a story of its own to chat 1, created `days_ago`."""
    with session_scope(engine) as session:
        story = Story(title=f"story {days_ago} {state}")
        session.add(story)
        session.flush()
        at = database_now(session) - timedelta(days=days_ago)
        delivery = Delivery(chat_id=1, story_id=story.id or 0, topics=json.dumps(["SoftBank"]),
                            state=state, created_at=at, sent_at=at, message_id=7)
        session.add(delivery)
        session.flush()
        if vote:
            session.add(Vote(delivery_id=delivery.id or 0, user_id=5, value="up"))
        if choice:
            session.add(FeedbackChoice(delivery_id=delivery.id or 0, kind="less", text="x"))
        return delivery.id or 0


def left(engine: Engine) -> set[int]:
    with session_scope(engine) as session:
        return {delivery_id or 0 for delivery_id in session.exec(select(Delivery.id)).all()}


def test_a_run_deletes_finished_rows_past_the_period_and_keeps_the_rest(
        engine: Engine, sending: Role) -> None:
    gone = {row(engine, days_ago=61), row(engine, days_ago=90, state="digested"),
            row(engine, days_ago=61, state="failed")}
    kept = {row(engine, days_ago=61, state="pending"), row(engine, days_ago=61, state="quiet"),
            row(engine, days_ago=61, vote=True), row(engine, days_ago=61, choice=True),
            row(engine, days_ago=59), row(engine, days_ago=0)}
    prune(engine, sending)
    assert left(engine) == kept and gone.isdisjoint(left(engine))
    with session_scope(engine) as session:
        assert len(session.exec(select(Vote)).all()) == 1, "the vote stays with its row"
        assert len(session.exec(select(FeedbackChoice)).all()) == 1


def test_zero_days_keeps_every_row(engine: Engine, sending: Role) -> None:
    rows = {row(engine, days_ago=400), row(engine, days_ago=61, state="failed")}
    prune(engine, sending, keep=None)
    assert left(engine) == rows


def test_only_the_replica_holding_the_sending_role_deletes(engine: Engine) -> None:
    rows = {row(engine, days_ago=400)}
    prune(engine, SimpleNamespace(local=False, held=lambda: False))
    assert left(engine) == rows


def test_a_backlog_goes_a_few_batches_a_run(engine: Engine, sending: Role,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A first run on a year of rows must not hold the database: it stops after its batches,
    and the next run goes on."""
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(job, "MAX_BATCHES", 2)
    old = [row(engine, days_ago=100 - n) for n in range(5)]
    young = row(engine, days_ago=1)
    prune(engine, sending)
    assert left(engine) == {old[4], young}
    prune(engine, sending)
    assert left(engine) == {young}


def test_the_floor_rises_past_deleted_and_voted_rows(engine: Engine) -> None:
    """Each state's scan starts at its floor: below it, its rows are gone or kept for good."""
    first = row(engine, days_ago=90)
    voted = row(engine, days_ago=89, vote=True)
    later = row(engine, days_ago=88)
    young = row(engine, days_ago=1)

    def batch(floor: int) -> retention.Batch:
        with session_scope(engine) as session:
            return retention.prune_batch(session=session, keep=KEEP, state="sent",
                                         floor=floor, limit=2)

    assert batch(0) == retention.Batch(deleted=1, floor=voted, more=True)
    assert batch(voted) == retention.Batch(deleted=1, floor=later, more=False), "young: done"
    assert batch(later) == retention.Batch(deleted=0, floor=later, more=False)
    assert left(engine) == {voted, young} and first not in left(engine)


def test_rows_a_blocked_chat_keeps_waiting_never_stall_the_scan(
        engine: Engine, sending: Role, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat that blocked the bot keeps its waiting rows for ever: the scan of finished rows
    never reads them, and a run of one batch still deletes behind them."""
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(job, "MAX_BATCHES", 1)
    waiting = [row(engine, days_ago=100, state=state) for state in ("pending", "quiet", "digest")]
    old = [row(engine, days_ago=99 - n) for n in range(3)]
    young = row(engine, days_ago=1)
    prune(engine, sending)
    assert left(engine) == {*waiting, old[2], young}


def test_the_newest_row_stays_so_no_id_is_given_twice(engine: Engine, sending: Role) -> None:
    """SQLite gives a new row the highest id plus one: were the newest row deleted, the next
    alert would take an old one's id, and the old alert's buttons would act on it."""
    old = [row(engine, days_ago=100), row(engine, days_ago=99)]
    prune(engine, sending)
    assert left(engine) == {old[1]}
    assert row(engine, days_ago=0) > old[1]


def test_retention_shorter_than_a_late_weekly_brief_reads_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="at least 15 days"):
        Settings(telegram_bot_token="1:x", delivery_retention_days=14)
    assert Settings(telegram_bot_token="1:x", delivery_retention_days=0).delivery_retention_days \
        == 0
    assert Settings(telegram_bot_token="1:x").delivery_retention_days == 60
