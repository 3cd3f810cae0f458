"""A publisher's oversized title cannot make alerts or digests fail (issue 11, SPEC §6: 4096)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, BASELINE, TOKEN, env_for, say

LONG_FEED_TITLE = "Enormous Feed " + "padding " * 750  # about 6,000 characters
LONG_HEADLINE = "SoftBank " + " ".join(f"word{n}" for n in range(800))  # about 5,000


def test_oversized_titles_still_arrive_as_alert_and_digest(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    assert len(LONG_FEED_TITLE) > 6000 and len(LONG_HEADLINE) > 5000
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        feeds.put("/feed.xml", rss(LONG_FEED_TITLE, BASELINE))
        bot = bot_process(tmp_path, env_for(telegram, f"sqlite:///{tmp_path / 't.db'}")).start()
        bot.wait_for_log("Tidings starting")
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        admin_chat = telegram.private_chat(admin)
        added = say(telegram, admin_chat, admin, f"/addsource {feeds.url('/feed.xml')}")
        assert "Enormous Feed" in added and len(added) <= 4096
        reader = telegram.user(2301, "Rae", language_code="en")
        chat = telegram.private_chat(reader)
        say(telegram, chat, reader, "/subscribe SoftBank")
        before = len(telegram.messages(chat["id"]))

        story = {"title": LONG_HEADLINE, "link": "http://news.test/long", "guid": "long",
                 "description": "SoftBank did something. It was long.",
                 "pub_date": datetime.now(UTC)}
        feeds.put("/feed.xml", rss(LONG_FEED_TITLE, [story, *BASELINE]))
        alert = telegram.wait_for_messages(chat["id"], before + 1, timeout=30)[before]
        assert "SoftBank word0 word1" in alert.text and "…" in alert.text
        assert "Enormous Feed" in alert.text, "the source is named, shortened"

        digest = say(telegram, chat, reader, "/digest")
        assert "SoftBank word0 word1" in digest
        assert "Enormous Feed" in say(telegram, admin_chat, admin, "/sources")
        assert telegram.rejected == [], "every message fitted Telegram's limits"
