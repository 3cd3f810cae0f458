"""SIGTERM in the middle of a fan-out: the bot stops in time, and a restart finishes the job."""

from __future__ import annotations

import time
from pathlib import Path

from jobs.pacing import PACING
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, BASELINE, NEW_SOFTBANK, TOKEN, env_for, say

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
        assert bot.terminate(timeout=10) == 0, bot.log  # a clean exit, within the 10 s
        delivered_before = sum(len(telegram.messages(c["id"])) > 1 for c in chats)

        bot = bot_process(tmp_path, env).start()
        for chat in chats:
            telegram.wait_for_messages(chat["id"], 2, timeout=30)
        time.sleep(2)
        alerts = [len(telegram.messages(c["id"])) - 1 for c in chats]
        assert alerts == [1] * READERS, f"{delivered_before} sent before SIGTERM; got {alerts}"
        bot.terminate()
        assert telegram.rejected == []


def test_sigkill_during_a_300_chat_fan_out_loses_nothing(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """At least once across a crash: duplicates only for the sends in flight at the kill."""
    readers = 300
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        feeds.put("/feed.xml", rss("Test News", BASELINE))
        env = env_for(telegram, f"sqlite:///{tmp_path / 'kill.db'}") | {"LOG_LEVEL": "INFO"}
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("Tidings starting")
        admin = telegram.user(ADMIN_ID, "Ada")
        say(telegram, telegram.private_chat(admin), admin, f"/addsource {feeds.url('/feed.xml')}")
        chats = []
        for n in range(readers):
            user = telegram.user(20_000 + n, f"K{n}", language_code="en")
            chat = telegram.private_chat(user)
            say(telegram, chat, user, "/subscribe SoftBank")
            chats.append(chat)

        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        deadline = time.monotonic() + 30
        while sum(len(telegram.messages(c["id"])) > 1 for c in chats) < 40:
            assert time.monotonic() < deadline, bot.log
            time.sleep(0.01)
        bot.kill()
        before = sum(len(telegram.messages(c["id"])) - 1 for c in chats)
        assert before < readers, "the kill came in the middle of the fan-out"

        bot_process(tmp_path, env).start()
        for chat in chats:
            telegram.wait_for_messages(chat["id"], 2, timeout=120)
        time.sleep(2)
        alerts = [len(telegram.messages(c["id"])) - 1 for c in chats]
        assert min(alerts) == 1, "zero lost"
        duplicates = sum(alerts) - readers
        assert duplicates <= PACING.in_flight, \
            f"{duplicates} duplicates; at most the sends in flight"
        assert telegram.rejected == []
