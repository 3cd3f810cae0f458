"""Paid broadcast through the real bot (issue 24.3): a story for more chats than the free rate
sends within PAID_BROADCAST_AFTER_SECONDS goes with allow_paid_broadcast until Telegram refuses
for want of Stars; the rest go free, every reader gets the alert once, the admin is told once,
and /stats shows the Stars spent."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, NEW_SOFTBANK, TOKEN, say, start_world, wait_until

READERS = 12


def test_a_paid_fan_out_falls_back_to_free_when_the_stars_run_out(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN, enforce_limits=True) as telegram, FeedServer() as feeds:
        telegram.set_star_balance(0.5)  # five paid messages; the budget would allow ten
        world = start_world(tmp_path, bot_process, telegram, feeds, {
            "PAID_BROADCAST_STARS_PER_DAY": "1", "PAID_BROADCAST_AFTER_SECONDS": "0.1"})
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        readers = [telegram.private_chat(telegram.user(9100 + n, "Reader", language_code="en"))
                   for n in range(READERS)]
        for chat in readers:
            user = {"id": chat["id"], "first_name": "Reader", "is_bot": False}
            assert "SoftBank" in say(telegram, chat, user, "/subscribe SoftBank")
        world.publish(NEW_SOFTBANK)

        def alerted() -> list[int]:
            return [sum("SoftBank" in m.text and m.reply_markup is not None
                        for m in telegram.messages(chat["id"])) for chat in readers]

        wait_until(lambda: min(alerted()) >= 1, timeout=60)
        wait_until(lambda: any("Star balance is too low" in m.text
                               for m in telegram.messages(ADMIN_ID)))
        assert telegram.paid_sends == 5 and telegram.too_many_requests == 0
        stats = say(telegram, telegram.private_chat(admin), admin, "/stats")
        assert re.search(r"Paid broadcast: 0\.5 of 1 Stars \(5 alerts\)", stats), stats
        assert alerted() == [1] * READERS, "each reader got the alert once"
        notices = [m for m in telegram.messages(ADMIN_ID) if "Star balance" in m.text]
        assert len(notices) == 1
