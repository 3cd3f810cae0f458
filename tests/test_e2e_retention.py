"""An alert past DELIVERY_RETENTION_DAYS (storage.retention), as its reader finds it: the
row is gone, its buttons say they are out of date, and /why says why it cannot answer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from storage.db import make_engine, session_scope
from storage.models import Delivery
from tests.conftest import BotProcess
from tests.harness import NEW_SOFTBANK, World, buttons, say
from tests.test_e2e_feedback import alert_for


def age_deliveries(database: Path, by: timedelta) -> None:
    engine = make_engine(f"sqlite:///{database}")
    with session_scope(engine) as session:
        for delivery in session.exec(select(Delivery)).all():
            delivery.created_at -= by
    engine.dispose()


def test_an_alert_past_retention_is_forgotten_and_says_so(
        world: World, tmp_path: Path, bot_process: type[BotProcess]) -> None:
    telegram = world.telegram
    reader = telegram.user(9601, "Old", language_code="en")
    chat = telegram.private_chat(reader)
    say(telegram, chat, reader, "/subscribe SoftBank")
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")

    world.bot.terminate()
    age_deliveries(tmp_path / "t.db", timedelta(days=61))
    world.bot = bot_process(tmp_path, world.bot.env).start()
    world.bot.wait_for_log("deleted 1 deliveries older than 60 days", timeout=30)
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    with session_scope(engine) as session:
        assert session.exec(select(Delivery)).all() == []
    engine.dispose()

    assert world.press(chat, reader, alert, buttons(alert)["👍"]) == \
        "This button is out of date."
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, reader, "/why", reply_to_message_id=alert.message_id)
    said = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text
    assert said == ("I no longer keep the details of this alert: alerts older than 60 days "
                    "are forgotten.")
    assert "Reply /why to one of my alerts" in say(telegram, chat, reader, "/why")
