"""SPEC §1-§7 end to end: the real bot process against the loopback Bot API, feeds and LLM."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, BASELINE, NEW_SOFTBANK, READER_ID, TOKEN, env_for, say

UNRELATED = {"title": "Cheese prices rise", "link": "http://news.test/b2", "guid": "b2",
             "description": "Camembert costs more.", "pub_date": datetime(2026, 11, 20, tzinfo=UTC)}


def test_walking_skeleton(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        feeds.put("/feed.xml", rss("Test News", BASELINE))
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        reader = telegram.user(READER_ID, "李雷", language_code="zh-hans")
        admin_chat, reader_chat = telegram.private_chat(admin), telegram.private_chat(reader)

        bot = bot_process(tmp_path, env_for(telegram, database_url)).start()
        bot.wait_for_log("Tidings starting")
        assert "LLM offline" in bot.log and "0 sources" in bot.log

        # 1. /start and /help answer in the user's Telegram language.
        assert "欢迎使用 Tidings" in say(telegram, reader_chat, reader, "/start")
        assert "Welcome to Tidings" in say(telegram, admin_chat, admin, "/start")
        reader_help = say(telegram, reader_chat, reader, "/help")
        assert "/subscribe" in reader_help and "/addsource" not in reader_help
        assert "/addsource" in say(telegram, admin_chat, admin, "/help"), "admins see theirs"
        bot.wait_for_log("command menus set")  # in the background since start-up
        assert telegram.commands(language_code="zh"), "command menu registered in Chinese"

        # 2. An admin adds the source; existing entries are stored, never alerted.
        reply = say(telegram, admin_chat, admin, f"/addsource {feeds.url('/feed.xml')}")
        assert "Test News" in reply and "Entries now in the feed: 2" in reply
        assert "#1 Test News" in say(telegram, admin_chat, admin, "/sources")

        # 3. The reader picks a language and a topic.
        assert "zh" in say(telegram, reader_chat, reader, "/lang zh")
        assert "SoftBank" in say(telegram, reader_chat, reader, "/subscribe SoftBank")
        assert "1. SoftBank" in say(telegram, reader_chat, reader, "/topics")
        time.sleep(2.5)  # two polls of the unchanged feed: the baseline is not alerted
        assert len(telegram.messages(reader_chat["id"])) == 5
        polls = [headers for path, headers in feeds.requests if path == "/feed.xml"][1:]
        assert polls and all("if-none-match" in headers for headers in polls), "conditional GET"

        # 4. A new matching entry arrives: one brief, in Chinese, shaped like SPEC §5.
        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, UNRELATED, *BASELINE]))
        brief = telegram.wait_for_messages(reader_chat["id"], 6, timeout=15)[5]
        assert brief.parse_mode == "HTML"
        for label in ("核心要点", "追踪建议", "来源", "SoftBank pledges billions"):
            assert label in brief.text
        assert any(flag in brief.text for flag in ("重点追踪", "持续关注", "一般了解"))
        assert 'href="http://news.test/b1"' in brief.html, "tracking parameters are removed"
        time.sleep(2)
        assert len(telegram.messages(reader_chat["id"])) == 6, "exactly one alert"
        assert len(telegram.messages(admin_chat["id"])) == 4, "the admin follows nothing"

        # 5. SIGTERM: gone within 10 s; a restart sends nothing twice and loses nothing.
        assert bot.terminate(timeout=10) == 0, bot.log  # a clean exit, within the 10 s
        feeds.put("/feed.xml", rss("Test News", [
            {**NEW_SOFTBANK, "guid": "b3", "link": "http://news.test/b3",
             "title": "SoftBank names a Lille data center partner",
             "description": "A local builder will construct the first hall."},
            NEW_SOFTBANK, UNRELATED, *BASELINE]))
        bot = bot_process(tmp_path, env_for(telegram, database_url)).start()
        bot.wait_for_log("1 sources")
        second = telegram.wait_for_messages(reader_chat["id"], 7, timeout=20)[6]
        assert "Lille data center partner" in second.text
        time.sleep(2.5)
        assert len(telegram.messages(reader_chat["id"])) == 7

        assert "已取消关注" in say(telegram, reader_chat, reader, "/unsubscribe SoftBank")
        assert "SoftBank" not in say(telegram, reader_chat, reader, "/topics")
        bot.terminate()

        assert telegram.rejected == []
        assert TOKEN not in bot.log and TOKEN.split(":")[1] not in bot.log
