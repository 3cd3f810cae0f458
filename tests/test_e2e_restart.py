"""SIGTERM in the middle of a fan-out: the bot stops in time, and a restart finishes the job."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.test_e2e_walkthrough import ADMIN_ID, BASELINE, NEW_SOFTBANK, TOKEN, env_for, say

READERS = 60


def test_sigterm_during_fan_out_loses_nothing_and_sends_nothing_twice(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        feeds.put("/feed.xml", rss("Test News", BASELINE))
        env = env_for(telegram, database_url)
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("Tidings starting")
        admin = telegram.user(ADMIN_ID, "Ada")
        say(telegram, telegram.private_chat(admin), admin, f"/addsource {feeds.url('/feed.xml')}")
        chats = []
        for n in range(READERS):
            user = telegram.user(10_000 + n, f"R{n}", language_code="en")
            chat = telegram.private_chat(user)
            say(telegram, chat, user, "/subscribe SoftBank")
            chats.append(chat)

        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        deadline = time.monotonic() + 20
        while not any(len(telegram.messages(c["id"])) > 1 for c in chats):
            assert time.monotonic() < deadline, bot.log
            time.sleep(0.01)
        assert bot.terminate(timeout=10) < 10
        delivered_before = sum(len(telegram.messages(c["id"])) > 1 for c in chats)

        bot = bot_process(tmp_path, env).start()
        for chat in chats:
            telegram.wait_for_messages(chat["id"], 2, timeout=30)
        time.sleep(2)
        alerts = [len(telegram.messages(c["id"])) - 1 for c in chats]
        assert alerts == [1] * READERS, f"{delivered_before} sent before SIGTERM; got {alerts}"
        bot.terminate()
        assert telegram.rejected == []
