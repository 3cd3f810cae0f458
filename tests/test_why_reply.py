"""/why sent as a reply to an alert that has only just shown: Telegram shows the alert before
the bot has its answer to the send, and sends are recorded together (jobs.deliver), so the
alert's message id may not be stored yet. /why waits for the record instead of answering
that the message is no alert of ours."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from telegram import Chat, InlineKeyboardButton, InlineKeyboardMarkup, Message, User

from handlers.feedback import RECORD_WAIT
from handlers.why import forgotten, replied_alert
from jobs.recording import recording
from news.ingest import ingest
from news.newsroom import Newsroom
from services import KEY
from storage import deliveries, subscriptions
from storage.db import db, session_scope
from storage.models import Delivery
from tests.harness import draft, make_chat, make_source

BOT = User(4242, "Tidings", is_bot=True)
READER = User(7, "Rea", is_bot=False)
MESSAGE_ID = 50
TOKEN = "claim-token"


def being_sent(engine: Engine) -> int:
    """Chat 1's alert of one story, claimed for sending, its message id not stored yet."""
    make_chat(engine, 1)
    source = make_source(engine)
    with session_scope(engine) as session:
        subscriptions.add(session=session, chat_id=1, query="SoftBank")
    ingest(Newsroom(engine), source, [draft("g1", "SoftBank pledges billions for Lille")])
    with session_scope(engine) as session:
        delivery = session.exec(select(Delivery)).one()
        delivery.claim_token = TOKEN
        session.add(delivery)
        return delivery.id or 0


def context(engine: Engine) -> Any:
    return SimpleNamespace(bot_data={KEY: SimpleNamespace(engine=engine)},
                           bot=SimpleNamespace(id=BOT.id))


def message(author: User, why: int | None) -> Message:
    """The message replied to: written by `author`, with an alert's "Why?" button or none."""
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Why?", callback_data=f"why:{why}")]]
                                  ) if why is not None else None
    return Message(MESSAGE_ID, datetime.now(UTC), Chat(1, "private"), from_user=author,
                   reply_markup=markup)


async def record(engine: Engine, delivery_id: int, after: float) -> None:
    """Telegram's answer comes `after` seconds late, then the send is recorded."""
    await asyncio.sleep(after)
    await db(engine, deliveries.mark_sent_many,
             sent=[deliveries.Sent(delivery_id, TOKEN, MESSAGE_ID)])


async def why_while_sending(engine: Engine, delivery_id: int, replied: Message, *,
                            here: bool, after: float = 0.3) -> tuple[Delivery | None, float]:
    """/why's lookup while the alert's send is under way: this process's send (`here`, whose
    record wakes /why at once), or another replica's, which only the database shows. The
    alert and how long the lookup took."""
    ctx = context(engine)

    async def send() -> None:
        if here:
            async with recording(ctx.bot_data, delivery_id):
                await record(engine, delivery_id, after)
        else:
            await record(engine, delivery_id, after)

    sending = asyncio.create_task(send())
    await asyncio.sleep(0)  # the send has begun
    started = time.monotonic()
    found = await replied_alert(ctx, 1, replied)
    took = time.monotonic() - started
    await sending
    return found, took


@pytest.mark.parametrize("here", [True, False], ids=["this process", "another replica"])
@pytest.mark.parametrize("button", [True, False], ids=["why button", "no keyboard"])
def test_a_reply_to_an_alert_being_recorded_waits_for_the_record(
    engine: Engine, here: bool, button: bool
) -> None:
    delivery_id = being_sent(engine)
    replied = message(BOT, delivery_id if button else None)
    found, took = asyncio.run(why_while_sending(engine, delivery_id, replied, here=here))
    assert found is not None and found.id == delivery_id and found.message_id == MESSAGE_ID
    assert 0.25 < took < RECORD_WAIT / 2, took


def test_a_reply_to_a_readers_own_message_does_not_wait(engine: Engine) -> None:
    delivery_id = being_sent(engine)
    found, took = asyncio.run(why_while_sending(engine, delivery_id, message(READER, None),
                                                here=True, after=3.0))
    assert found is None and took < 1.5, took


def test_a_reply_with_nothing_being_sent_is_answered_at_once(engine: Engine) -> None:
    delivery_id = being_sent(engine)
    with session_scope(engine) as session:  # sent and recorded long ago, as another message
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.claim_token, row.message_id, row.state = None, MESSAGE_ID + 1, "sent"
        session.add(row)
    started = time.monotonic()
    assert asyncio.run(replied_alert(context(engine), 1, message(BOT, None))) is None
    assert time.monotonic() - started < 1.5


def test_only_an_alert_sent_before_the_retention_period_is_called_forgotten() -> None:
    """A missing record of an old alert was deleted (storage.retention); a young alert's is
    missing for another reason, and a message without the "Why?" button is no alert."""
    keep, now = timedelta(days=60), datetime.now(UTC)
    old, young = now - timedelta(days=61), now - timedelta(days=59)

    def sent(at: datetime, why: int | None) -> Message:
        return Message(MESSAGE_ID, at, Chat(1, "private"), from_user=BOT, reply_markup=(
            InlineKeyboardMarkup([[InlineKeyboardButton("Why?", callback_data=f"why:{why}")]])
            if why is not None else None))

    assert forgotten(sent(old, 12), keep, now)
    assert not forgotten(sent(young, 12), keep, now)
    assert not forgotten(sent(old, None), keep, now)
