"""An alert past DELIVERY_RETENTION_DAYS (storage.retention), as its reader finds it: the
row is gone, its buttons say they are out of date, and /why says why it cannot answer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from storage.db import make_engine, session_scope
from storage.models import Delivery, Story
from tests.conftest import BotProcess
from tests.harness import NEW_SOFTBANK, World, buttons, say
from tests.test_e2e_feedback import NEW_LINK, alert_for, story

AGE = timedelta(days=61)


def age_rows(database: Path, by: timedelta) -> None:
    """Every delivery and story `by` older, as if written that long ago."""
    engine = make_engine(f"sqlite:///{database}")
    with session_scope(engine) as session:
        for row in [*session.exec(select(Delivery)).all(), *session.exec(select(Story)).all()]:
            row.created_at -= by
    engine.dispose()


def test_an_alert_past_retention_is_forgotten_and_says_so(
        world: World, tmp_path: Path, bot_process: type[BotProcess]) -> None:
    telegram = world.telegram
    reader = telegram.user(9601, "Old", language_code="en")
    chat = telegram.private_chat(reader)
    say(telegram, chat, reader, "/subscribe SoftBank")
    world.publish(NEW_SOFTBANK)
    old = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    world.publish(story("r2", "SoftBank opens a lab in Lille"), NEW_SOFTBANK)
    newest = alert_for(telegram, chat["id"], "SoftBank opens a lab in Lille")

    world.bot.terminate()
    age_rows(tmp_path / "t.db", AGE)
    for alert in (old, newest):
        telegram.age_message(chat["id"], alert.message_id, AGE.total_seconds())
    world.bot = bot_process(tmp_path, world.bot.env).start()
    # the newest row stays whatever its age: its id is never given to a new alert
    world.bot.wait_for_log("deleted 1 deliveries older than 60 days", timeout=30)

    assert world.press(chat, reader, old, buttons(old)["👍"]) == "This button is out of date."
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, reader, "/why", reply_to_message_id=old.message_id)
    said = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text
    assert said == ("I no longer keep the details of this alert: alerts older than 60 days "
                    "are forgotten.")
    assert say(telegram, chat, reader, f"/why {NEW_LINK}") == (
        "I no longer keep where alerts older than 60 days went, so I cannot tell whether "
        "this story reached you.")
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, reader, "/why", reply_to_message_id=newest.message_id)
    kept = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text
    assert "Why this alert" in kept and "SoftBank" in kept
    assert "Reply /why to one of my alerts" in say(telegram, chat, reader, "/why")
