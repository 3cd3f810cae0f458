"""A feed that only carries snippets: the article page is fetched and its text summarized."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, BASELINE, TOKEN, env_for, say

ARTICLE = """<html><head><title>SoftBank in Lille</title></head><body>
<nav><a href="/">Home</a> <a href="/tech">Tech</a> Subscribe to our newsletter</nav>
<article><h1>SoftBank picks Lille for its European AI campus</h1>
<p>SoftBank chose Lille for a European campus dedicated to artificial intelligence, the group
said on Monday. The site will host research teams and a large data center.</p>
<p>Regional president Xavier Bertrand welcomed the decision and promised fast permits for the
construction work, which should start next spring.</p>
<p>The investment adds to the pledges made at the Choose France summit earlier this year, when
several groups announced data center projects across the country.</p>
</article><footer>Copyright Example News. All rights reserved. Cookie settings.</footer>
</body></html>"""


def test_snippet_entries_are_completed_from_the_article_page(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        feeds.put("/feed.xml", rss("Test News", BASELINE))
        feeds.put("/articles/lille.html", ARTICLE, content_type="text/html; charset=utf-8")
        env = env_for(telegram, f"sqlite:///{tmp_path / 't.db'}") | {"FULL_TEXT": "true"}
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("Tidings starting")
        admin = telegram.user(ADMIN_ID, "Ada")
        say(telegram, telegram.private_chat(admin), admin, f"/addsource {feeds.url('/feed.xml')}")
        user = telegram.user(9001, "Fu", language_code="en")
        chat = telegram.private_chat(user)
        say(telegram, chat, user, "/subscribe SoftBank")
        snippet = {"title": "SoftBank picks Lille", "link": feeds.url("/articles/lille.html"),
                   "guid": "ft1", "description": "SoftBank picks Lille…",
                   "pub_date": datetime(2026, 11, 23, tzinfo=UTC)}
        feeds.put("/feed.xml", rss("Test News", [snippet, *BASELINE]))
        alert = telegram.wait_for_messages(chat["id"], 2, timeout=30)[1]
        assert feeds.hits("/articles/lille.html") == 1
        assert "chose Lille for a European campus" in alert.text, "the article's lead"
        assert "newsletter" not in alert.text and "Cookie" not in alert.text
        bot.terminate()
        assert telegram.rejected == []
